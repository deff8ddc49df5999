//! Hard negatives mined from a [`Collection`], as sentence-transformers'
//! `util.mine_hard_negatives` does with a corpus: for each query, the documents a retriever
//! ranks between `range_min` and `range_max` that are not judged positive, optionally only
//! those scoring below the positive by a margin; the best `num_negatives` of them, or
//! `num_negatives` drawn at random among them ([`Sampling::Random`]).

use rand::SeedableRng;
use rand::seq::IndexedRandom;
use sieve_engine::{Collection, Fusion, Retriever, Scored};

use crate::{Result, TrainError};

/// Options of [`mine_hard_negatives`], named and defaulted as in sentence-transformers where it
/// has the option.
///
/// ```
/// use sieve_engine::Retriever;
/// use sieve_train::mining::MiningOptions;
///
/// // Skip the 10 best candidates (likely unjudged positives), take 7 of the next 90.
/// let options = MiningOptions { range_min: 10, range_max: 100, num_negatives: 7, ..Default::default() };
/// let dense = MiningOptions { retriever: Some(Retriever::Dense), absolute_margin: Some(0.05), ..Default::default() };
/// assert_eq!(options.retriever, None); // hybrid: every retriever the collection has, fused
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MiningOptions {
    /// The first-stage retriever to rank candidates with; `None` is the collection's hybrid
    /// search. No rerank stage runs.
    pub retriever: Option<Retriever>,
    /// How the hybrid first stage fuses its retrievers; `None` is the collection's default
    /// (min-max). Sentence-transformers' recipes often mine with reciprocal rank fusion.
    pub fusion: Option<Fusion>,
    /// Candidates ranked before this (0-based, positives left out) are skipped.
    pub range_min: usize,
    /// Candidates ranked from this on are not considered (default 100).
    pub range_max: usize,
    /// Negatives kept per query (default 3).
    pub num_negatives: usize,
    /// Skip candidates scoring above this.
    pub max_score: Option<f32>,
    /// Keep only candidates scoring at most `positive − absolute_margin` (dense only: the
    /// positive's score is its similarity to the query under the bi-encoder).
    pub absolute_margin: Option<f32>,
    /// Keep only candidates scoring at most `positive × (1 − relative_margin)` (dense only).
    pub relative_margin: Option<f32>,
    /// Which of the candidates that pass become the negatives (sentence-transformers'
    /// `sampling_strategy`; default [`Sampling::Top`]).
    pub sampling: Sampling,
}

/// How [`mine_hard_negatives`] picks `num_negatives` among the candidates that pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sampling {
    /// The best-ranked ones: the hardest negatives (`sampling_strategy="top"`).
    #[default]
    Top,
    /// A uniform draw without replacement, kept in rank order (`sampling_strategy="random"`):
    /// easier on average, and less likely to be unjudged positives than the very top.
    Random {
        /// Seed of the draw (one stream for all queries, in their order).
        seed: u64,
    },
}

impl Default for MiningOptions {
    fn default() -> Self {
        Self {
            retriever: None,
            fusion: None,
            range_min: 0,
            range_max: 100,
            num_negatives: 3,
            max_score: None,
            absolute_margin: None,
            relative_margin: None,
            sampling: Sampling::Top,
        }
    }
}

/// The negatives mined for one query.
#[derive(Debug, Clone, PartialEq)]
pub struct Mined {
    /// The query.
    pub query: String,
    /// Its judged positive document ids.
    pub positives: Vec<String>,
    /// Negative document ids with their rank (1-based, among the candidates) and score, best first.
    pub negatives: Vec<(String, Scored)>,
}

/// Mines hard negatives for each `(query, positive document ids)` from the documents of
/// `collection` (see the module documentation and [`MiningOptions`]). Queries for which no
/// candidate passes keep an empty `negatives`. With a margin, the lowest-scoring positive
/// sets the bar.
///
/// ```no_run
/// use sieve_engine::{Collection, Retriever};
/// use sieve_train::mining::{MiningOptions, mine_hard_negatives};
///
/// let collection = Collection::open("scifact.sieve")?;
/// let queries = vec![("0-dimensional biomaterials show inductive properties.".to_string(), vec!["31715818".to_string()])];
/// let options = MiningOptions { retriever: Some(Retriever::Dense), num_negatives: 7, ..Default::default() };
/// for mined in mine_hard_negatives(&collection, &queries, &options)? {
///     println!("{}: {:?}", mined.query, mined.negatives);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn mine_hard_negatives(
    collection: &Collection,
    queries: &[(String, Vec<String>)],
    options: &MiningOptions,
) -> Result<Vec<Mined>> {
    check(options)?;
    let margins = options.absolute_margin.is_some() || options.relative_margin.is_some();
    let mut rng = match options.sampling {
        Sampling::Random { seed } => Some(rand::rngs::StdRng::seed_from_u64(seed)),
        Sampling::Top => None,
    };
    let mut out = Vec::with_capacity(queries.len());
    for (query, positives) in queries {
        let depth = options.range_max + positives.len();
        let search = collection
            .search(query.as_str())
            .no_rerank()
            .keep_duplicates()
            .top_k(depth);
        let search = match options.retriever {
            Some(retriever) => search.retrievers(&[retriever]),
            None => search.hybrid(),
        };
        let search = match options.fusion {
            Some(fusion) => search.fusion(fusion),
            None => search,
        };
        let hits = search.run()?;
        let bar = match margins {
            true => Some(positive_floor(collection, query, positives)?),
            false => None,
        };
        let candidates = hits
            .into_iter()
            .filter(|hit| !positives.contains(&hit.id))
            .enumerate()
            .filter(|(rank, _)| (options.range_min..options.range_max).contains(rank))
            .filter(|(_, hit)| options.max_score.is_none_or(|max| hit.score <= max))
            .filter(|(_, hit)| {
                bar.is_none_or(|positive| {
                    options.absolute_margin.is_none_or(|m| hit.score <= positive - m)
                        && options
                            .relative_margin
                            .is_none_or(|m| hit.score <= positive * (1.0 - m))
                })
            })
            .map(|(rank, hit)| {
                (
                    hit.id,
                    Scored {
                        rank: rank + 1,
                        score: hit.score,
                    },
                )
            });
        let negatives = match rng.as_mut() {
            None => candidates.take(options.num_negatives).collect(),
            Some(rng) => {
                let candidates: Vec<_> = candidates.collect();
                let mut picked: Vec<_> = candidates
                    .choose_multiple(rng, options.num_negatives)
                    .cloned()
                    .collect();
                picked.sort_by_key(|(_, s)| s.rank);
                picked
            }
        };
        out.push(Mined {
            query: query.clone(),
            positives: positives.clone(),
            negatives,
        });
    }
    Ok(out)
}

fn check(options: &MiningOptions) -> Result<()> {
    if options.range_min >= options.range_max {
        return Err(TrainError::InvalidOption(format!(
            "range_min ({}) must be below range_max ({})",
            options.range_min, options.range_max
        )));
    }
    let margins = options.absolute_margin.is_some() || options.relative_margin.is_some();
    if margins && options.retriever != Some(Retriever::Dense) {
        return Err(TrainError::InvalidOption(
            "margins compare bi-encoder similarities: mine with retriever Some(Retriever::Dense)".into(),
        ));
    }
    for (name, value) in [
        ("absolute_margin", options.absolute_margin),
        ("relative_margin", options.relative_margin),
    ] {
        if value.is_some_and(|m| !m.is_finite()) {
            return Err(TrainError::InvalidOption(format!("{name} must be finite")));
        }
    }
    Ok(())
}

/// The lowest similarity between `query` and its positives under the collection's bi-encoder,
/// as the dense retriever scores them (the query embedded as it embeds queries, the stored
/// document vectors).
fn positive_floor(collection: &Collection, query: &str, positives: &[String]) -> Result<f32> {
    let model = collection
        .dense_model()
        .ok_or(sieve_engine::EngineError::RetrieverMissing("dense"))?;
    let q = collection.dense_query_embedding(query)?;
    let mut floor = f32::INFINITY;
    for id in positives {
        let vectors = collection
            .vectors(id)?
            .ok_or_else(|| TrainError::InvalidOption(format!("positive document {id:?} is not in the collection")))?;
        let dense = vectors
            .dense
            .ok_or(sieve_engine::EngineError::RetrieverMissing("dense"))?;
        floor = floor.min(model.similarity_fn().pair(&q, &dense));
    }
    Ok(floor)
}
