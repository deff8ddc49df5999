//! Test helpers shared by the sparse index's unit tests: a deterministic generator of random
//! sparse vectors, and the check that `search` equals `brute_force_search` bit for bit.

use super::SparseIndex;
use crate::filter::{AllowSet, allowed};
use crate::hit::Hit;

/// A tiny deterministic generator (64-bit LCG, high bits out).
pub(super) struct Lcg(pub(super) u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    pub(super) fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
    /// Weights on a coarse grid, so that many scores tie exactly.
    pub(super) fn weight(&mut self) -> f32 {
        match self.below(4) {
            0 => (1 + self.below(8)) as f32 * 0.25,
            _ => self.below(1 << 20) as f32 / (1 << 18) as f32,
        }
    }
    pub(super) fn vector(&mut self, vocab: u32, max_nnz: u32) -> (Vec<u32>, Vec<f32>) {
        let nnz = self.below(max_nnz + 1);
        let mut terms: Vec<u32> = Vec::new();
        // Skewed term ids, like a real vocabulary: low ids are frequent.
        while terms.len() < nnz as usize {
            let t = self.below(vocab).min(self.below(vocab));
            if !terms.contains(&t) {
                terms.push(t);
            }
        }
        let weights = (0..terms.len()).map(|_| self.weight()).collect();
        (terms, weights)
    }
}

pub(super) fn random_index(rng: &mut Lcg, vocab: u32, n: u32, max_nnz: u32) -> SparseIndex {
    let docs: Vec<(u32, Vec<u32>, Vec<f32>)> = (0..n)
        .map(|i| {
            let (t, w) = rng.vector(vocab, max_nnz);
            (i * 3 + rng.below(3), t, w)
        })
        .collect();
    let mut index = SparseIndex::new(vocab);
    index.insert(&borrowed(&docs)).unwrap();
    index
}

pub(super) fn borrowed(docs: &[(u32, Vec<u32>, Vec<f32>)]) -> Vec<(u32, &[u32], &[f32])> {
    docs.iter()
        .map(|(id, t, w)| (*id, t.as_slice(), w.as_slice()))
        .collect()
}

pub(super) fn bits(hits: &[Hit]) -> Vec<(u32, u32)> {
    hits.iter().map(|h| (h.id, h.score.to_bits())).collect()
}

/// `search` equals `brute_force_search` bit for bit over many queries, `k`s and filters.
pub(super) fn check_against_brute_force(
    index: &SparseIndex,
    rng: &mut Lcg,
    queries: usize,
    filters: &[Option<AllowSet>],
) {
    let vocab = index.vocab_size();
    let mut nonempty = 0;
    for q in 0..queries {
        let (terms, weights) = rng.vector(vocab, 12);
        for k in [1, 2, 5, 10, 37, 1000] {
            for filter in filters {
                let got = index.search(&terms, &weights, k, filter.as_ref()).unwrap();
                let want = index.brute_force_search(&terms, &weights, k, filter.as_ref()).unwrap();
                assert_eq!(bits(&got), bits(&want), "query {q} ({terms:?}, {weights:?}), k {k}");
                assert!(got.len() <= k && got.iter().all(|h| h.score > 0.0));
                assert!(
                    got.iter()
                        .all(|h| index.contains(h.id) && allowed(filter.as_ref(), h.id))
                );
                nonempty += usize::from(!got.is_empty());
            }
        }
    }
    assert!(nonempty > 0, "the queries should find something");
}

pub(super) fn filters(rng: &mut Lcg, max_id: u32) -> Vec<Option<AllowSet>> {
    let even: AllowSet = (0..max_id).filter(|i| i % 2 == 0).collect();
    let sparse: AllowSet = (0..max_id).filter(|_| rng.below(10) == 0).collect();
    vec![None, Some(even), Some(sparse), Some(AllowSet::new())]
}
