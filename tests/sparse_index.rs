//! SparseIndex on SciFact: the splade-tiny vectors of all 5,183 documents and 1,109 queries.
//! The pruned search must return exactly what brute force returns (same ids, same order, same
//! score bits) for every query: unfiltered, filtered, after deleting and replacing documents,
//! and after a save/load round trip.

mod common;

use common::scifact;
use sieve::encoders::SparseVector;
use sieve::index::{AllowSet, Hit, SparseIndex};

/// BERT's WordPiece vocabulary, splade-tiny's output dimension.
const VOCAB: u32 = 30522;
const K: usize = 10;

fn index_of(corpus: &[SparseVector]) -> SparseIndex {
    let docs: Vec<(u32, &[u32], &[f32])> = corpus
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u32, v.indices.as_slice(), v.values.as_slice()))
        .collect();
    let mut index = SparseIndex::new(VOCAB);
    index.insert(&docs).expect("SciFact SPLADE vectors are valid");
    index
}

fn bits(hits: &[Hit]) -> Vec<(u32, u32)> {
    hits.iter().map(|h| (h.id, h.score.to_bits())).collect()
}

/// Checks every query; returns how many hits were compared.
fn assert_search_is_exact(
    index: &SparseIndex,
    queries: &[SparseVector],
    filter: Option<&AllowSet>,
    what: &str,
) -> usize {
    let mut hits = 0;
    for (i, q) in queries.iter().enumerate() {
        let got = index.search(&q.indices, &q.values, K, filter).unwrap();
        let want = index.brute_force_search(&q.indices, &q.values, K, filter).unwrap();
        assert_eq!(bits(&got), bits(&want), "{what}: query {i}");
        hits += got.len();
    }
    eprintln!(
        "{what}: {} queries, {hits} hits, identical to brute force",
        queries.len()
    );
    hits
}

#[test]
fn scifact_search_equals_brute_force() {
    let vectors = scifact::splade();
    let (corpus, queries) = (&vectors.corpus, &vectors.queries);
    assert_eq!((corpus.len(), queries.len()), (5183, 1109));
    let mut index = index_of(corpus);
    assert_eq!(index.len(), corpus.len());

    // Scores are the dot product in ascending term order, as SparseVector::dot computes it.
    let top = index.search(&queries[0].indices, &queries[0].values, 1, None).unwrap();
    assert_eq!(
        top[0].score.to_bits(),
        queries[0].dot(&corpus[top[0].id as usize]).to_bits()
    );

    let hits = assert_search_is_exact(&index, queries, None, "all documents");
    assert_eq!(
        hits,
        queries.len() * K,
        "every query shares a term with at least 10 documents"
    );

    let even: AllowSet = (0..corpus.len() as u32).filter(|id| id % 2 == 0).collect();
    let hits = assert_search_is_exact(&index, queries, Some(&even), "even ids only");
    assert_eq!(hits, queries.len() * K, "a filtered search still fills k");

    // Delete 10% of the documents, and replace another 5% with the vector of another document.
    let deleted: Vec<u32> = (0..corpus.len() as u32).filter(|id| id % 10 == 3).collect();
    assert_eq!(index.remove(&deleted), deleted.len());
    let replaced: Vec<(u32, &[u32], &[f32])> = (0..corpus.len())
        .filter(|i| i % 20 == 7)
        .map(|i| {
            let donor = &corpus[(i * 7919) % corpus.len()];
            (i as u32, donor.indices.as_slice(), donor.values.as_slice())
        })
        .collect();
    index.insert(&replaced).unwrap();
    assert_eq!(index.len(), corpus.len() - deleted.len());
    assert_search_is_exact(&index, queries, None, "after deleting 10% and replacing 5%");
    assert_search_is_exact(&index, queries, Some(&even), "after deletions, even ids only");
    for q in queries.iter().take(100) {
        let hits = index.search(&q.indices, &q.values, K, None).unwrap();
        assert!(hits.iter().all(|h| h.id % 10 != 3), "a deleted document came back");
    }

    let dir = common::ScratchDir::new("sparse-scifact");
    index.save(&dir).unwrap();
    let loaded = SparseIndex::load(&dir).unwrap();
    for (i, q) in queries.iter().enumerate() {
        let want = index.search(&q.indices, &q.values, K, None).unwrap();
        assert_eq!(
            bits(&loaded.search(&q.indices, &q.values, K, None).unwrap()),
            bits(&want),
            "loaded: query {i}"
        );
    }
}
