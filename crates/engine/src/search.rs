//! [`Search`]: the query builder — which retrievers, how many hits, filters, fusion and the
//! rerank stage — and the [`SearchHit`]s it returns.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sieve_index::{AllowSet, DocId, Hit, SearchParams};

use crate::collection::{Collection, to_document};
use crate::duplicates::Shingles;
use crate::error::{EngineError, Result};
use crate::filter::Filter;
use crate::fusion::{Fusion, fuse};
use crate::rerank::Rerank;

/// Candidates each retriever contributes to fusion and reranking, unless set otherwise.
pub const DEFAULT_CANDIDATES: usize = 100;
/// First-stage hits the cross-encoder rescores when a reranker is configured and the search
/// does not say otherwise.
pub const DEFAULT_RERANK_DEPTH: usize = 20;

/// A first-stage retriever.
///
/// ```no_run
/// # let collection = sieve_engine::Collection::open("docs.sieve")?;
/// use sieve_engine::Retriever;
///
/// let hits = collection
///     .search("what causes tides")
///     .retrievers(&[Retriever::Dense, Retriever::Bm25])
///     .weight(Retriever::Bm25, 0.5)
///     .run()?;
/// assert_eq!(Retriever::Bm25.name(), "bm25");
/// # Ok::<(), sieve_engine::EngineError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Retriever {
    /// Dense vectors (HNSW) from the bi-encoder.
    Dense,
    /// Sparse vectors (inverted index) from the SPLADE model.
    Sparse,
    /// BM25 full text.
    Bm25,
}

impl Retriever {
    /// Lower-case name: `dense`, `sparse`, `bm25`.
    pub fn name(self) -> &'static str {
        match self {
            Retriever::Dense => "dense",
            Retriever::Sparse => "sparse",
            Retriever::Bm25 => "bm25",
        }
    }
}

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
    collection: &'c Collection,
    query: String,
    retrievers: Option<Vec<Retriever>>,
    top_k: usize,
    candidates: usize,
    filter: Option<Filter>,
    rerank: RerankDepth,
    rerank_mode: Rerank,
    fusion: Fusion,
    weights: HashMap<Retriever, f32>,
    ef_search: Option<usize>,
    keep_duplicates: bool,
}

impl<'c> Search<'c> {
    pub(crate) fn new(collection: &'c Collection, query: String) -> Self {
        Search {
            collection,
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
        self.retrievers = Some(retrievers.to_vec());
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
        self.weights.insert(retriever, weight);
        self
    }

    /// HNSW search width for this query.
    pub fn ef_search(mut self, ef: usize) -> Self {
        self.ef_search = Some(ef);
        self
    }

    /// Runs the search: hits best first, at most `top_k`.
    ///
    /// The final `score` is the reranked score for reranked hits (the cross-encoder's score
    /// under [`Rerank::Replace`], the fused score under [`Rerank::Fuse`]), else the fused
    /// score, else the single retriever's score.
    pub fn run(self) -> Result<Vec<SearchHit>> {
        let query = self.query.trim();
        if query.is_empty() {
            return Err(EngineError::InvalidInput("empty query".into()));
        }
        let c = self.collection;
        let retrievers = self.resolve_retrievers()?;
        let rerank_depth = match self.rerank {
            RerankDepth::Off => 0,
            RerankDepth::Top(n) => {
                if c.models.reranker.is_none() {
                    return Err(EngineError::RetrieverMissing("reranker"));
                }
                n
            }
            RerankDepth::Default if c.models.reranker.is_some() => DEFAULT_RERANK_DEPTH,
            RerankDepth::Default => 0,
        };
        if self.top_k == 0 {
            return Ok(Vec::new());
        }
        let depth = self.candidates.max(self.top_k).max(rerank_depth);

        // Encode outside the index lock: it is the slow part.
        let dense_query = match (retrievers.contains(&Retriever::Dense), &c.models.dense) {
            (true, Some(model)) => Some(model.encode_query(&[query])?.row(0).to_vec()),
            _ => None,
        };
        let sparse_query = match (retrievers.contains(&Retriever::Sparse), &c.models.sparse) {
            (true, Some(model)) => Some(model.encode_query(&[query])?.into_rows().remove(0)),
            _ => None,
        };

        if retrievers.contains(&Retriever::Bm25) {
            c.sync_text()?;
        }
        let (lists, first_stage) = {
            let state = c.read_state();
            let allow: Option<AllowSet> = self.filter.as_ref().map(|f| {
                state
                    .metadata
                    .iter()
                    .filter(|(_, m)| f.matches(m))
                    .map(|(&iid, _)| iid)
                    .collect()
            });
            let allow = allow.as_ref();
            let mut lists: Vec<(Retriever, Vec<Hit>)> = Vec::new();
            for &r in &retrievers {
                let hits = match r {
                    Retriever::Dense => {
                        let index = state.dense.as_ref().ok_or(EngineError::RetrieverMissing("dense"))?;
                        let q = dense_query.as_deref().ok_or(EngineError::RetrieverMissing("dense"))?;
                        let params = SearchParams {
                            ef_search: self.ef_search,
                            exact: false,
                        };
                        sieve_index::DenseIndex::search(index, q, depth, &params, allow)?
                    }
                    Retriever::Sparse => {
                        let index = state.sparse.as_ref().ok_or(EngineError::RetrieverMissing("sparse"))?;
                        let q = sparse_query.as_ref().ok_or(EngineError::RetrieverMissing("sparse"))?;
                        index.search(&q.indices, &q.values, depth, allow)?
                    }
                    Retriever::Bm25 => {
                        let index = state.text.as_ref().ok_or(EngineError::RetrieverMissing("bm25"))?;
                        index.search(query, depth, allow)?
                    }
                };
                // An index can briefly hold a document the store lost (buffered writes and a
                // crash); the store is the truth.
                let hits = hits
                    .into_iter()
                    .filter(|h| state.metadata.contains_key(&h.id))
                    .collect();
                lists.push((r, hits));
            }
            let first_stage: Vec<(DocId, f32)> = if lists.len() == 1 {
                lists[0].1.iter().map(|h| (h.id, h.score)).collect()
            } else {
                let weighted: Vec<(&[Hit], f32)> = lists
                    .iter()
                    .map(|(r, hits)| (hits.as_slice(), self.weights.get(r).copied().unwrap_or(1.0)))
                    .collect();
                fuse(self.fusion, &weighted)
            };
            (lists, first_stage)
        };

        let per_retriever: HashMap<Retriever, HashMap<DocId, Scored>> = lists
            .iter()
            .map(|(r, hits)| {
                let ranks = hits
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
                (*r, ranks)
            })
            .collect();

        // (doc, final score, first-stage position, reranker rank+score)
        let mut ordered: Vec<(DocId, f32, usize, Option<Scored>)> = first_stage
            .iter()
            .enumerate()
            .map(|(i, &(id, s))| (id, s, i, None))
            .collect();
        let mut texts: HashMap<DocId, crate::store::DocRecord> = HashMap::new();
        if rerank_depth > 0 && !ordered.is_empty() {
            let reranker = c
                .models
                .reranker
                .as_ref()
                .ok_or(EngineError::RetrieverMissing("reranker"))?;
            let n = rerank_depth.min(ordered.len());
            for &(id, ..) in &ordered[..n] {
                if let Some(record) = c.store.record(id)? {
                    texts.insert(id, record);
                }
            }
            let pairs: Vec<(&str, &str)> = ordered[..n]
                .iter()
                .map(|(id, ..)| (query, texts.get(id).map(|r| r.text.as_str()).unwrap_or("")))
                .collect();
            let scores = reranker.predict(&pairs)?;
            let reranked = self.rerank_mode.apply(&scores);
            let mut head: Vec<(DocId, f32, usize, Option<Scored>)> = reranked
                .iter()
                .map(|r| {
                    let (id, _, pos, _) = ordered[r.candidate];
                    (
                        id,
                        r.score,
                        pos,
                        Some(Scored {
                            rank: r.reranker_rank,
                            score: r.reranker_score,
                        }),
                    )
                })
                .collect();
            head.extend(ordered.drain(n..));
            ordered = head;
        }
        // A document deleted while this search ran has no record any more: skip it and let
        // the next candidate take its place, so `top_k` hits still come back when they exist.
        // So does a near-duplicate of a hit already taken, which is folded into that hit.
        let mut hits: Vec<SearchHit> = Vec::with_capacity(self.top_k.min(ordered.len()));
        let mut shingles: Vec<Shingles> = Vec::new();
        for (id, score, pos, reranker) in ordered {
            if hits.len() == self.top_k {
                break;
            }
            let record = match texts.remove(&id) {
                Some(r) => r,
                None => match c.store.record(id)? {
                    Some(r) => r,
                    None => continue,
                },
            };
            let doc = to_document(record);
            if !self.keep_duplicates {
                let these = Shingles::of(&doc.text);
                if let Some(i) = shingles.iter().position(|s| s.is_near_duplicate(&these)) {
                    hits[i].duplicates.push(doc.id);
                    continue;
                }
                shingles.push(these);
            }
            let of = |r: Retriever| per_retriever.get(&r).and_then(|m| m.get(&id)).copied();
            hits.push(SearchHit {
                id: doc.id,
                score,
                text: doc.text,
                metadata: doc.metadata,
                dense: of(Retriever::Dense),
                sparse: of(Retriever::Sparse),
                bm25: of(Retriever::Bm25),
                first_stage: Scored {
                    rank: pos + 1,
                    score: first_stage[pos].1,
                },
                reranker,
                duplicates: Vec::new(),
            });
        }
        Ok(hits)
    }

    fn resolve_retrievers(&self) -> Result<Vec<Retriever>> {
        let c = self.collection;
        let configured = |r: Retriever| match r {
            Retriever::Dense => c.models.dense.is_some(),
            Retriever::Sparse => c.models.sparse.is_some(),
            Retriever::Bm25 => c.config().text,
        };
        match &self.retrievers {
            None => Ok([Retriever::Dense, Retriever::Sparse, Retriever::Bm25]
                .into_iter()
                .filter(|&r| configured(r))
                .collect()),
            Some(list) if list.is_empty() => Err(EngineError::InvalidInput("no retriever selected".into())),
            Some(list) => {
                for &r in list {
                    if !configured(r) {
                        return Err(EngineError::RetrieverMissing(r.name()));
                    }
                }
                // A retriever named twice is searched (and fused) once.
                let mut unique: Vec<Retriever> = Vec::with_capacity(list.len());
                for &r in list {
                    if !unique.contains(&r) {
                        unique.push(r);
                    }
                }
                Ok(unique)
            }
        }
    }
}
