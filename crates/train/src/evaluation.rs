//! Retrieval quality of a saved model on held-out judgments (nDCG@10, MRR@10), as `sieve train`
//! reports after every epoch: a bi-encoder or SPLADE model ranks the whole corpus, a reranker
//! reorders a collection's first-stage top `depth`.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use sieve_engine::eval::read_qrels;
//! use sieve_train::evaluation::evaluate_dense;
//!
//! let qrels = read_qrels("scifact/qrels/dev.tsv".as_ref())?;
//! let queries: BTreeMap<String, String> = BTreeMap::new(); // query id → text
//! let corpus: BTreeMap<String, String> = BTreeMap::new(); // document id → text
//! let scores = evaluate_dense("fine-tuned".as_ref(), &queries, &corpus, &qrels)?;
//! println!("nDCG@10 {:.4}", scores.ndcg_at_10);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sieve_encoders::{CrossEncoder, SentenceTransformer, SparseEncoder};
use sieve_engine::eval::{Qrels, mrr_at, ndcg_at};
use sieve_engine::{Collection, Fusion};

use crate::{Result, TrainError};

/// Mean scores over the judged queries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetrievalScores {
    /// nDCG@10 (gain = grade, discount log2(rank + 1)).
    pub ndcg_at_10: f64,
    /// MRR@10 (grade > 0 is relevant).
    pub mrr_at_10: f64,
    /// Queries evaluated.
    pub queries: usize,
}

fn judged<'a>(queries: &'a BTreeMap<String, String>, qrels: &'a Qrels) -> Result<Vec<(&'a String, &'a String)>> {
    let list: Vec<(&String, &String)> = queries.iter().filter(|(id, _)| qrels.contains_key(*id)).collect();
    if list.is_empty() {
        return Err(TrainError::InvalidOption(
            "no query has judgments to evaluate against".into(),
        ));
    }
    Ok(list)
}

fn mean(rankings: &[(&String, Vec<&str>)], qrels: &Qrels) -> RetrievalScores {
    let n = rankings.len().max(1) as f64;
    let (mut ndcg, mut mrr) = (0.0, 0.0);
    for (query, ranked) in rankings {
        ndcg += ndcg_at(10, ranked, &qrels[*query]);
        mrr += mrr_at(10, ranked, &qrels[*query]);
    }
    RetrievalScores {
        ndcg_at_10: ndcg / n,
        mrr_at_10: mrr / n,
        queries: rankings.len(),
    }
}

/// The ten best of `scores` (one per document id, in `ids` order), best first.
fn top10<'a>(ids: &[&'a str], scores: impl Iterator<Item = f32>) -> Vec<&'a str> {
    let mut scored: Vec<(f32, &str)> = scores.zip(ids.iter().copied()).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.into_iter().take(10).map(|(_, id)| id).collect()
}

/// A bi-encoder saved in `model`: queries (query prompt) against every document (document
/// prompt), by the model's similarity, exhaustively.
pub fn evaluate_dense(
    model: &Path,
    queries: &BTreeMap<String, String>,
    corpus: &BTreeMap<String, String>,
    qrels: &Qrels,
) -> Result<RetrievalScores> {
    let encoder = SentenceTransformer::load(model)?;
    exhaustive(queries, corpus, qrels, |queries, documents| {
        let documents = encoder.encode_document(documents)?;
        let queries = encoder.encode_query(queries)?;
        Ok(encoder.similarity(&queries, &documents)?)
    })
}

/// A SPLADE model saved in `model`: dot products of queries against every document.
pub fn evaluate_sparse(
    model: &Path,
    queries: &BTreeMap<String, String>,
    corpus: &BTreeMap<String, String>,
    qrels: &Qrels,
) -> Result<RetrievalScores> {
    let encoder = SparseEncoder::load(model)?;
    exhaustive(queries, corpus, qrels, |queries, documents| {
        let documents = encoder.encode(documents)?;
        let queries = encoder.encode(queries)?;
        Ok(queries
            .rows()
            .iter()
            .map(|q| documents.rows().iter().map(|d| q.dot(d)).collect())
            .collect())
    })
}

/// Ranks every document of `corpus` for each judged query by `score(query texts, document
/// texts)`, a row of scores per query in corpus order, and averages the metrics.
fn exhaustive(
    queries: &BTreeMap<String, String>,
    corpus: &BTreeMap<String, String>,
    qrels: &Qrels,
    score: impl FnOnce(&[&str], &[&str]) -> Result<Vec<Vec<f32>>>,
) -> Result<RetrievalScores> {
    let judged = judged(queries, qrels)?;
    let ids: Vec<&str> = corpus.keys().map(String::as_str).collect();
    let texts: Vec<&str> = corpus.values().map(String::as_str).collect();
    let query_texts: Vec<&str> = judged.iter().map(|(_, t)| t.as_str()).collect();
    let scores = score(&query_texts, &texts)?;
    let rankings: Vec<(&String, Vec<&str>)> = judged
        .iter()
        .zip(scores)
        .map(|((id, _), row)| (*id, top10(&ids, row.into_iter())))
        .collect();
    Ok(mean(&rankings, qrels))
}

/// A reranker saved in `model`, alone, over the first-stage (no rerank) top `depth` of
/// `collection`'s default search, its retrievers fused by `fusion` (`None`: the search default).
pub fn evaluate_reranker(
    model: &Path,
    collection: &Collection,
    queries: &BTreeMap<String, String>,
    qrels: &Qrels,
    depth: usize,
    fusion: Option<Fusion>,
) -> Result<RetrievalScores> {
    let judged = judged(queries, qrels)?;
    let reranker = CrossEncoder::load(model)?;
    let mut first_stage = Vec::with_capacity(judged.len());
    for (_, text) in &judged {
        let search = collection.search(text.as_str()).no_rerank().top_k(depth);
        let search = match fusion {
            Some(fusion) => search.fusion(fusion),
            None => search,
        };
        let hits = search.run()?;
        first_stage.push(hits.into_iter().map(|h| (h.id, h.text)).collect::<Vec<_>>());
    }
    let mut rankings = Vec::with_capacity(judged.len());
    for ((id, text), hits) in judged.iter().zip(&first_stage) {
        let pairs: Vec<(&str, &str)> = hits.iter().map(|(_, t)| (text.as_str(), t.as_str())).collect();
        let scores = reranker.predict(&pairs)?;
        let ids: Vec<&str> = hits.iter().map(|(i, _)| i.as_str()).collect();
        rankings.push((*id, top10(&ids, scores.into_iter())));
    }
    Ok(mean(&rankings, qrels))
}
