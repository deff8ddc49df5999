//! HNSW on SciFact's all-MiniLM-L6-v2 vectors: recall against exact search. Making the vectors
//! takes the encoder, so this check lives here; the dense index's own tests (random-xs-20,
//! deletes, filters, persistence, bad input) are in `crates/index/tests/dense_index.rs`.

mod common;

use sieve::index::{DenseIndex, DocId, FlatIndex, HnswIndex, HnswParams, Metric, SearchParams};

const K: usize = 10;

fn top_k(index: &dyn DenseIndex, query: &[f32]) -> Vec<DocId> {
    let hits = index.search(query, K, &SearchParams::default(), None).expect("search");
    hits.iter().map(|h| h.id).collect()
}

#[test]
fn scifact_minilm_recall_against_exact_search() {
    let vectors = common::scifact::minilm();
    let points: Vec<(DocId, &[f32])> = (0..).zip(vectors.corpus.iter().map(Vec::as_slice)).collect();
    let mut hnsw = HnswIndex::new(vectors.dim, Metric::Cosine, HnswParams::default()).unwrap();
    hnsw.insert(&points).expect("insert");
    let mut flat = FlatIndex::new(vectors.dim, Metric::Cosine);
    flat.insert(&points).expect("insert");
    let found: usize = vectors
        .queries
        .iter()
        .map(|q| {
            let exact = top_k(&flat, q);
            top_k(&hnsw, q).iter().filter(|id| exact.contains(id)).count()
        })
        .sum();
    let recall = found as f64 / (vectors.queries.len() * K) as f64;
    println!(
        "SciFact all-MiniLM-L6-v2 ({} docs, {} queries): HNSW recall@10 {recall:.4}",
        vectors.corpus.len(),
        vectors.queries.len()
    );
    assert!(recall >= 0.98, "SciFact recall@10 {recall}");
}
