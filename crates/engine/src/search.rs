//! [`Search`]: the query builder — which retrievers, how many hits, filters, fusion and the
//! rerank stage — and the [`SearchHit`]s it returns.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sieve_index::{AllowSet, DocId, Hit, SearchParams};

use crate::duplicates::Shingles;
use crate::error::{EngineError, Result};
use crate::filter::Filter;
use crate::fusion::{Fusion, fuse};
use crate::indexes::Indexes;
use crate::models::Models;
use crate::rerank::Rerank;
pub use crate::retrievers::Retriever;
use crate::retrievers::{KINDS, Query};
use crate::store::{DocRecord, Schema, Store};

/// Candidates each retriever contributes to fusion and reranking, unless set otherwise.
pub const DEFAULT_CANDIDATES: usize = 100;
/// First-stage hits the cross-encoder rescores when a reranker is configured and the search
/// does not say otherwise.
pub const DEFAULT_RERANK_DEPTH: usize = 20;

/// A hit's rank (1-based) and score in one ranking; see [`SearchHit`] for an example.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// 1-based position in that ranking.
    pub rank: usize,
    /// Score in that ranking.
    pub score: f32,
}

/// One search result.
///
/// ```
/// use sieve_engine::{Collection, CollectionConfig, Document};
/// use serde_json::json;
///
/// let dir = std::env::temp_dir().join(format!("sieve-doc-hit-{}", std::process::id()));
/// let bm25_only = CollectionConfig { dense: None, sparse: None, reranker: None, ..Default::default() };
/// let collection = Collection::create(&dir, bm25_only)?;
/// collection.add(vec![Document::new("t1", "Tides follow the moon").with_metadata(json!({"year": 2020}))])?;
/// let hits = collection.search("why do tides follow the moon?").run()?;
/// let hit = &hits[0];
/// assert_eq!((hit.id.as_str(), &hit.metadata["year"]), ("t1", &json!(2020)));
/// assert_eq!(hit.bm25.map(|bm25| bm25.rank), Some(1)); // rank and score per retriever
/// assert!(hit.dense.is_none() && hit.reranker.is_none()); // not configured here
/// # drop(collection);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), sieve_engine::EngineError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The document's user id.
    pub id: String,
    /// Final score (see [`Search::run`]): the fused, reranked or single retriever's score.
    pub score: f32,
    /// The document's text.
    pub text: String,
    /// The document's metadata.
    pub metadata: Value,
    /// Rank and score from dense retrieval, when it found this document.
    pub dense: Option<Scored>,
    /// Rank and score from sparse retrieval, when it found this document.
    pub sparse: Option<Scored>,
    /// Rank and score from BM25, when it found this document.
    pub bm25: Option<Scored>,
    /// Rank and score after the first stage (fusion, or the single retriever).
    pub first_stage: Scored,
    /// Rank and score by the cross-encoder alone, when the hit was reranked.
    pub reranker: Option<Scored>,
    /// Ids of lower-ranked documents whose text is a near-duplicate of this one's (see
    /// [`crate::duplicates`]), folded into this hit; empty with [`Search::keep_duplicates`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum RerankDepth {
    Default,
    Off,
    Top(usize),
}

/// What a search reads of its collection.
#[derive(Clone, Copy)]
pub(crate) struct Parts<'c> {
    pub schema: &'c Schema,
    pub store: &'c Store,
    pub models: &'c Models,
    pub indexes: &'c Indexes,
}

impl std::fmt::Debug for Parts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("config", &self.schema.config)
            .finish()
    }
}

/// A search under construction; [`run`](Self::run) executes it.
///
/// By default: a hybrid of every retriever the collection has, fused by min-max,
/// top 10, reranked (top 20 candidates, [`Rerank::Fuse`] with weight 0.75) when the
/// collection has a reranker, and a hit whose text is a near-duplicate of a higher one folded
/// into it ([`SearchHit::duplicates`]) so that the next candidate takes its place.
///
/// ```no_run
/// # let collection = sieve_engine::Collection::open("docs.sieve")?;
/// use sieve_engine::{Filter, Fusion, Rerank};
///
/// let hits = collection
///     .search("what causes tides")
///     .hybrid()
///     .fusion(Fusion::Dbsf)
///     .filter(Filter::range("year").gte(2000.0))
///     .rerank(50)
///     .rerank_mode(Rerank::Replace)
///     .top_k(5)
///     .run()?;
/// for hit in hits {
///     println!("{:.3} {} (bm25 rank {:?})", hit.score, hit.id, hit.bm25.map(|s| s.rank));
/// }
/// # Ok::<(), sieve_engine::EngineError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a search does nothing until .run()"]
pub struct Search<'c> {
    parts: Parts<'c>,
    query: String,
    /// Names of the retrievers asked for (`None`: every configured one).
    retrievers: Option<Vec<&'static str>>,
    top_k: usize,
    candidates: usize,
    filter: Option<Filter>,
    rerank: RerankDepth,
    rerank_mode: Rerank,
    fusion: Fusion,
    weights: HashMap<&'static str, f32>,
    ef_search: Option<usize>,
    keep_duplicates: bool,
    diversity: Option<f32>,
}

/// One retriever's ranking of the query.
struct Ranking {
    retriever: &'static str,
    hits: Vec<Hit>,
}

/// A document on its way through the stages, best first.
struct Candidate {
    id: DocId,
    /// The score so far: the first stage's, then the reranked one.
    score: f32,
    /// Rank and score after the first stage.
    first_stage: Scored,
    /// Rank and score by the cross-encoder alone, once reranked.
    reranker: Option<Scored>,
    /// The stored document, once a stage has read it.
    record: Option<DocRecord>,
}

/// What [`Search::run`] settles before it searches.
struct Plan {
    retrievers: Vec<&'static str>,
    /// Candidates each retriever contributes.
    depth: usize,
    /// First-stage hits the cross-encoder rescores (0: none).
    rerank_depth: usize,
}

impl<'c> Search<'c> {
    pub(crate) fn new(parts: Parts<'c>, query: String) -> Self {
        Search {
            parts,
            query,
            retrievers: None,
            top_k: 10,
            candidates: DEFAULT_CANDIDATES,
            filter: None,
            rerank: RerankDepth::Default,
            rerank_mode: Rerank::default(),
            fusion: Fusion::default(),
            weights: HashMap::new(),
            ef_search: None,
            keep_duplicates: false,
            diversity: None,
        }
    }

    /// Returns near-duplicate hits as hits of their own instead of folding each into the
    /// higher hit it repeats.
    ///
    /// ```
    /// use sieve_engine::{Collection, CollectionConfig, Document};
    ///
    /// let dir = std::env::temp_dir().join(format!("sieve-doc-dups-{}", std::process::id()));
    /// let bm25_only = CollectionConfig { dense: None, sparse: None, reranker: None, ..Default::default() };
    /// let collection = Collection::create(&dir, bm25_only)?;
    /// let chapter = "Ownership rules: each value has one owner, and the value is dropped when the owner goes out of scope.";
    /// collection.add(vec![
    ///     Document::new("ch4#0", chapter),
    ///     Document::new("print#7", format!("Chapter 4. {chapter}")),
    /// ])?;
    /// let folded = collection.search("who owns a value").run()?;
    /// assert_eq!(folded.len(), 1);
    /// assert_eq!(folded[0].duplicates.len(), 1);
    /// let all = collection.search("who owns a value").keep_duplicates().run()?;
    /// assert_eq!(all.len(), 2);
    /// # drop(collection);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn keep_duplicates(mut self) -> Self {
        self.keep_duplicates = true;
        self
    }

    /// Dense retrieval only.
    pub fn dense(self) -> Self {
        self.retrievers(&[Retriever::Dense])
    }

    /// Sparse (SPLADE) retrieval only.
    pub fn sparse(self) -> Self {
        self.retrievers(&[Retriever::Sparse])
    }

    /// BM25 only.
    pub fn bm25(self) -> Self {
        self.retrievers(&[Retriever::Bm25])
    }

    /// Every configured retriever, fused (the default).
    pub fn hybrid(mut self) -> Self {
        self.retrievers = None;
        self
    }

    /// Exactly these retrievers (fused when more than one).
    pub fn retrievers(mut self, retrievers: &[Retriever]) -> Self {
        self.retrievers = Some(retrievers.iter().map(|r| r.name()).collect());
        self
    }

    /// Exactly the retrievers with these names, including ones without a [`Retriever`].
    #[cfg(test)]
    pub(crate) fn retriever_names(mut self, names: &[&'static str]) -> Self {
        self.retrievers = Some(names.to_vec());
        self
    }

    /// Number of hits to return (default 10).
    pub fn top_k(mut self, k: usize) -> Self {
        self.top_k = k;
        self
    }

    /// Hits each retriever contributes before fusion (default 100, never fewer than needed).
    pub fn candidates(mut self, n: usize) -> Self {
        self.candidates = n;
        self
    }

    /// Only documents whose metadata passes `filter`; applied inside every retriever.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Rescore the first `n` first-stage hits with the cross-encoder.
    pub fn rerank(mut self, n: usize) -> Self {
        self.rerank = if n == 0 { RerankDepth::Off } else { RerankDepth::Top(n) };
        self
    }

    /// No rerank stage, even when the collection has a reranker.
    pub fn no_rerank(mut self) -> Self {
        self.rerank = RerankDepth::Off;
        self
    }

    /// How the reranker's ranking combines with the first stage's (default: fuse, weight 0.75).
    pub fn rerank_mode(mut self, mode: Rerank) -> Self {
        self.rerank_mode = mode;
        self
    }

    /// How retrievers are fused (default [`Fusion::MinMax`]).
    pub fn fusion(mut self, fusion: Fusion) -> Self {
        self.fusion = fusion;
        self
    }

    /// Weight of one retriever in fusion (default 1).
    pub fn weight(mut self, retriever: Retriever, weight: f32) -> Self {
        self.weights.insert(retriever.name(), weight);
        self
    }

    /// HNSW search width for this query.
    pub fn ef_search(mut self, ef: usize) -> Self {
        self.ef_search = Some(ef);
        self
    }

    /// Maximal marginal relevance: picks the hits one by one, each time the candidate with
    /// the best `(1 - diversity) · relevance − diversity · (its highest cosine similarity to a
    /// hit already picked)`, as Qdrant's MMR does. `diversity` runs from 0 (relevance only,
    /// the plain ranking) to 1 (as unlike the hits above as possible).
    ///
    /// Relevance is the final score scaled to [0, 1] over the pool: the reranked candidates
    /// when the search reranks, else the first-stage candidates (see
    /// [`candidates`](Self::candidates)). Similarity is between the documents' stored dense
    /// embeddings, so the collection needs a dense model.
    ///
    /// ```no_run
    /// # let collection = sieve_engine::Collection::open("docs.sieve")?;
    /// // Ten hits that do not all say the same thing.
    /// let hits = collection.search("how do vaccines work").diversity(0.5).run()?;
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn diversity(mut self, diversity: f32) -> Self {
        self.diversity = Some(diversity);
        self
    }

    /// Runs the search: hits best first, at most `top_k`.
    ///
    /// The final `score` is the reranked score for reranked hits (the cross-encoder's score
    /// under [`Rerank::Replace`], the fused score under [`Rerank::Fuse`]), else the fused
    /// score, else the single retriever's score.
    pub fn run(self) -> Result<Vec<SearchHit>> {
        let plan = self.plan()?;
        if self.top_k == 0 {
            return Ok(Vec::new());
        }
        let query = self.encode(&plan)?;
        let rankings = self.first_stage(&plan, &query)?;
        let candidates = self.fuse(&rankings);
        let candidates = self.rerank_stage(&query.text, candidates, plan.rerank_depth)?;
        let candidates = match self.diversity {
            Some(diversity) => self.diversify(candidates, diversity, plan.rerank_depth)?,
            None => candidates,
        };
        self.hits(candidates, &rankings)
    }

    /// Checks the request against the collection: which retrievers, how deep.
    fn plan(&self) -> Result<Plan> {
        if self.query.trim().is_empty() {
            return Err(EngineError::InvalidInput("empty query".into()));
        }
        if let Some(d) = self.diversity
            && !(0.0..=1.0).contains(&d)
        {
            return Err(EngineError::InvalidInput(format!(
                "diversity must be within 0 and 1, got {d}"
            )));
        }
        if let Rerank::Fuse { weight } = self.rerank_mode
            && !(weight.is_finite() && weight >= 0.0)
        {
            return Err(EngineError::InvalidInput(format!(
                "the rerank weight must be a finite number >= 0, got {weight}"
            )));
        }
        if self.diversity.is_some() && self.parts.schema.dense.is_none() {
            // Diversity compares the documents' dense embeddings.
            return Err(EngineError::RetrieverMissing("dense"));
        }
        let has_reranker = self.parts.models.reranker.is_some();
        let rerank_depth = match self.rerank {
            RerankDepth::Off => 0,
            RerankDepth::Top(_) if !has_reranker => return Err(EngineError::RetrieverMissing("reranker")),
            RerankDepth::Top(n) => n,
            RerankDepth::Default if has_reranker => DEFAULT_RERANK_DEPTH,
            RerankDepth::Default => 0,
        };
        Ok(Plan {
            retrievers: self.resolve_retrievers()?,
            depth: self.candidates.max(self.top_k).max(rerank_depth),
            rerank_depth,
        })
    }

    /// The query as each selected retriever needs it, encoded outside the index lock.
    fn encode(&self, plan: &Plan) -> Result<Query> {
        let mut query = Query {
            text: self.query.trim().to_string(),
            ..Query::default()
        };
        for kind in KINDS.iter().filter(|k| plan.retrievers.contains(&k.name)) {
            (kind.encode)(self.parts.models, &mut query)?;
        }
        Ok(query)
    }

    /// Every selected retriever's ranking, restricted to the filter's documents.
    fn first_stage(&self, plan: &Plan, query: &Query) -> Result<Vec<Ranking>> {
        let Parts { store, indexes, .. } = self.parts;
        indexes.sync(store, &plan.retrievers)?;
        let state = indexes.read();
        let allow: Option<AllowSet> = self.filter.as_ref().map(|f| state.metadata.allowed(f));
        let params = SearchParams {
            ef_search: self.ef_search,
            exact: false,
        };
        let mut rankings = Vec::with_capacity(plan.retrievers.len());
        for &name in &plan.retrievers {
            let slot = state.slot(name).ok_or(EngineError::RetrieverMissing(name))?;
            let hits = slot.index.search(query, plan.depth, &params, allow.as_ref())?;
            // An index can briefly hold a document the store lost (buffered writes and a
            // crash); the store is the truth.
            let hits = hits.into_iter().filter(|h| state.metadata.contains(h.id)).collect();
            rankings.push(Ranking { retriever: name, hits });
        }
        Ok(rankings)
    }

    /// One ranking of candidates: the single retriever's, or the rankings fused.
    fn fuse(&self, rankings: &[Ranking]) -> Vec<Candidate> {
        let fused: Vec<(DocId, f32)> = match rankings {
            [single] => single.hits.iter().map(|h| (h.id, h.score)).collect(),
            _ => {
                let weighted: Vec<(&[Hit], f32)> = rankings
                    .iter()
                    .map(|r| (r.hits.as_slice(), self.weights.get(r.retriever).copied().unwrap_or(1.0)))
                    .collect();
                fuse(self.fusion, &weighted)
            }
        };
        fused
            .into_iter()
            .enumerate()
            .map(|(i, (id, score))| Candidate {
                id,
                score,
                first_stage: Scored { rank: i + 1, score },
                reranker: None,
                record: None,
            })
            .collect()
    }

    /// Rescores the first `depth` candidates with the cross-encoder and reorders them (the
    /// rest keep their order below them).
    fn rerank_stage(&self, query: &str, mut candidates: Vec<Candidate>, depth: usize) -> Result<Vec<Candidate>> {
        let n = depth.min(candidates.len());
        if n == 0 {
            return Ok(candidates);
        }
        let reranker = self
            .parts
            .models
            .reranker
            .as_ref()
            .ok_or(EngineError::RetrieverMissing("reranker"))?;
        for candidate in &mut candidates[..n] {
            candidate.record = self.parts.store.record(candidate.id)?;
        }
        let pairs: Vec<(&str, &str)> = candidates[..n]
            .iter()
            .map(|c| (query, c.record.as_ref().map_or("", |r| r.text.as_str())))
            .collect();
        let scores = reranker.predict(&pairs)?;
        let rest = candidates.split_off(n);
        let mut head: Vec<Option<Candidate>> = candidates.into_iter().map(Some).collect();
        let mut reranked: Vec<Candidate> = Vec::with_capacity(n + rest.len());
        for r in self.rerank_mode.apply(&scores) {
            if let Some(mut candidate) = head[r.candidate].take() {
                candidate.score = r.score;
                candidate.reranker = Some(Scored {
                    rank: r.reranker_rank,
                    score: r.reranker_score,
                });
                reranked.push(candidate);
            }
        }
        reranked.extend(rest);
        Ok(reranked)
    }

    /// Reorders the pool by maximal marginal relevance (see [`diversity`](Self::diversity)).
    fn diversify(&self, mut candidates: Vec<Candidate>, diversity: f32, rerank_depth: usize) -> Result<Vec<Candidate>> {
        let pool = match rerank_depth {
            0 => candidates.len(),
            n => n.min(candidates.len()),
        };
        if pool < 2 {
            return Ok(candidates);
        }
        let rest = candidates.split_off(pool);
        let mut vectors = Vec::with_capacity(pool);
        for c in &candidates {
            vectors.push(self.parts.store.dense(c.id)?.map(|v| normalized(&v)));
        }
        let scores: Vec<f32> = candidates.iter().map(|c| c.score).collect();
        let order = mmr(&scores, &vectors, diversity, self.top_k.min(pool));
        let mut slots: Vec<Option<Candidate>> = candidates.into_iter().map(Some).collect();
        let mut ordered: Vec<Candidate> = order.iter().filter_map(|&i| slots[i].take()).collect();
        // The pool's unpicked candidates keep their order below the picked ones.
        ordered.extend(slots.into_iter().flatten());
        ordered.extend(rest);
        Ok(ordered)
    }

    /// The first `top_k` candidates as hits, each with its stored document and per-retriever
    /// ranks.
    fn hits(&self, candidates: Vec<Candidate>, rankings: &[Ranking]) -> Result<Vec<SearchHit>> {
        let ranks: HashMap<&str, HashMap<DocId, Scored>> = rankings
            .iter()
            .map(|r| {
                let ranks = r
                    .hits
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        (
                            h.id,
                            Scored {
                                rank: i + 1,
                                score: h.score,
                            },
                        )
                    })
                    .collect();
                (r.retriever, ranks)
            })
            .collect();
        // A document deleted while this search ran has no record any more: skip it and let
        // the next candidate take its place, so `top_k` hits still come back when they exist.
        // So does a near-duplicate of a hit already taken, which is folded into that hit.
        let mut hits: Vec<SearchHit> = Vec::with_capacity(self.top_k.min(candidates.len()));
        let mut shingles: Vec<Shingles> = Vec::new();
        for candidate in candidates {
            if hits.len() == self.top_k {
                break;
            }
            let record = match candidate.record {
                Some(r) => r,
                None => match self.parts.store.record(candidate.id)? {
                    Some(r) => r,
                    None => continue,
                },
            };
            let doc = record.into_document();
            if !self.keep_duplicates {
                let these = Shingles::of(&doc.text);
                if let Some(i) = shingles.iter().position(|s| s.is_near_duplicate(&these)) {
                    hits[i].duplicates.push(doc.id);
                    continue;
                }
                shingles.push(these);
            }
            let of = |r: Retriever| ranks.get(r.name()).and_then(|m| m.get(&candidate.id)).copied();
            hits.push(SearchHit {
                id: doc.id,
                score: candidate.score,
                text: doc.text,
                metadata: doc.metadata,
                dense: of(Retriever::Dense),
                sparse: of(Retriever::Sparse),
                bm25: of(Retriever::Bm25),
                first_stage: candidate.first_stage,
                reranker: candidate.reranker,
                duplicates: Vec::new(),
            });
        }
        Ok(hits)
    }

    fn resolve_retrievers(&self) -> Result<Vec<&'static str>> {
        let schema = self.parts.schema;
        let configured = |name: &str| KINDS.iter().any(|k| k.name == name && (k.configured)(schema));
        match &self.retrievers {
            None => Ok(KINDS
                .iter()
                .filter(|k| (k.configured)(schema))
                .map(|k| k.name)
                .collect()),
            Some(list) if list.is_empty() => Err(EngineError::InvalidInput("no retriever selected".into())),
            Some(list) => {
                if let Some(missing) = list.iter().find(|name| !configured(name)) {
                    return Err(EngineError::RetrieverMissing(missing));
                }
                // A retriever named twice is searched (and fused) once.
                let mut unique: Vec<&'static str> = Vec::with_capacity(list.len());
                for &name in list {
                    if !unique.contains(&name) {
                        unique.push(name);
                    }
                }
                Ok(unique)
            }
        }
    }
}

/// `v` scaled to unit length (a zero vector stays zero).
fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    match norm > 0.0 {
        true => v.iter().map(|x| x / norm).collect(),
        false => v.to_vec(),
    }
}

/// Maximal marginal relevance: the order in which `k` of the candidates are picked, each the
/// best by `(1 - diversity) · relevance − diversity · max similarity to those picked`, with
/// relevance the score min-max scaled to [0, 1] and similarity the cosine of the (unit)
/// vectors. A candidate without a vector is similar to nothing.
fn mmr(scores: &[f32], vectors: &[Option<Vec<f32>>], diversity: f32, k: usize) -> Vec<usize> {
    let (lo, hi) = scores.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &s| {
        (lo.min(s), hi.max(s))
    });
    let relevance: Vec<f32> = scores
        .iter()
        .map(|&s| if hi > lo { (s - lo) / (hi - lo) } else { 1.0 })
        .collect();
    let cosine = |a: &Option<Vec<f32>>, b: &Option<Vec<f32>>| match (a, b) {
        (Some(a), Some(b)) => a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>(),
        _ => 0.0,
    };
    let mut max_sim = vec![f32::NEG_INFINITY; scores.len()];
    let mut picked = vec![false; scores.len()];
    let mut order = Vec::with_capacity(k);
    while order.len() < k.min(scores.len()) {
        let value = |i: usize| {
            let redundancy = if order.is_empty() { 0.0 } else { max_sim[i] };
            (1.0 - diversity) * relevance[i] - diversity * redundancy
        };
        // Ties go to the better-ranked candidate.
        let Some(best) = (0..scores.len())
            .filter(|&i| !picked[i])
            .reduce(|best, i| if value(i) > value(best) { i } else { best })
        else {
            break;
        };
        picked[best] = true;
        order.push(best);
        for i in 0..scores.len() {
            if !picked[i] {
                max_sim[i] = max_sim[i].max(cosine(&vectors[i], &vectors[best]));
            }
        }
    }
    order
}
