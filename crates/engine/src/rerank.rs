//! The rerank stage: how cross-encoder scores turn a first-stage ranking into the final one.

use serde::{Deserialize, Serialize};

/// How the reranker's ranking combines with the first stage's.
///
/// A small reranker on a domain it barely knows can rank worse than a good hybrid first
/// stage; fused with the first stage's ranking it still adds to it. [`Rerank::Fuse`] is the
/// default for that reason; [`Rerank::Replace`] returns the reranker's order alone.
///
/// ```
/// use sieve_engine::Rerank;
///
/// let reranker_scores = [0.1, 0.5, 0.9]; // of the first stage's hits 1, 2 and 3
/// let kept = Rerank::Fuse { weight: 0.0 }.apply(&reranker_scores);
/// assert_eq!(kept.iter().map(|r| r.candidate).collect::<Vec<_>>(), [0, 1, 2]);
/// let trusted = Rerank::Fuse { weight: 100.0 }.apply(&reranker_scores);
/// assert_eq!(trusted[0].candidate, 2);
/// // In a search: collection.search(query).rerank_mode(Rerank::Fuse { weight: 1.0 })
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Rerank {
    /// The cross-encoder's scores alone decide the order.
    Replace,
    /// Reciprocal-rank fusion of both rankings (k = 60):
    /// `weight / (60 + rank_reranker) + 1 / (60 + rank_first_stage)`.
    Fuse {
        /// Weight of the reranker's ranking; 0 keeps the first-stage order, a very large
        /// weight gives the reranker's.
        weight: f32,
    },
}

/// Fused with weight 0.75: the best of 0.25, 0.5, 0.75 and 1 over the default (min-max) first
/// stage on SciFact's dev queries (nDCG@10 0.7815; `examples/fusion_sweep`).
impl Default for Rerank {
    fn default() -> Self {
        Rerank::Fuse { weight: 0.75 }
    }
}

/// RRF offset of [`Rerank::Fuse`].
pub const RERANK_RRF_K: f32 = 60.0;

/// One candidate after the rerank stage.
///
/// ```
/// use sieve_engine::Rerank;
///
/// let top = Rerank::Replace.apply(&[0.2, 0.7])[0];
/// assert_eq!(top.candidate, 1); // the first stage's second hit
/// assert_eq!((top.reranker_rank, top.reranker_score, top.score), (1, 0.7, 0.7));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reranked {
    /// Index of the candidate in the first-stage list (its rank − 1).
    pub candidate: usize,
    /// The cross-encoder's score.
    pub reranker_score: f32,
    /// 1-based rank by the cross-encoder's score alone.
    pub reranker_rank: usize,
    /// Final score: the reranker's score under `Replace`, the fused score under `Fuse`.
    pub score: f32,
}

impl Rerank {
    /// Orders candidates given in first-stage order by their cross-encoder scores.
    /// Ties go to the better first-stage rank.
    ///
    /// ```
    /// use sieve_engine::Rerank;
    /// // First stage: a, b, c. The reranker prefers c, then b, then a.
    /// let out = Rerank::Replace.apply(&[0.1, 0.5, 0.9]);
    /// assert_eq!(out.iter().map(|r| r.candidate).collect::<Vec<_>>(), [2, 1, 0]);
    /// // Fused with weight 0.5 the first stage's top hit holds on.
    /// let out = Rerank::Fuse { weight: 0.5 }.apply(&[0.1, 0.5, 0.9]);
    /// assert_eq!(out[0].candidate, 0);
    /// ```
    pub fn apply(self, reranker_scores: &[f32]) -> Vec<Reranked> {
        let mut by_reranker: Vec<usize> = (0..reranker_scores.len()).collect();
        by_reranker.sort_by(|&a, &b| reranker_scores[b].total_cmp(&reranker_scores[a]).then(a.cmp(&b)));
        let mut out: Vec<Reranked> = vec![
            Reranked {
                candidate: 0,
                reranker_score: 0.0,
                reranker_rank: 0,
                score: 0.0
            };
            reranker_scores.len()
        ];
        for (rank0, &candidate) in by_reranker.iter().enumerate() {
            let reranker_score = reranker_scores[candidate];
            let score = match self {
                Rerank::Replace => reranker_score,
                Rerank::Fuse { weight } => {
                    weight / (RERANK_RRF_K + rank0 as f32 + 1.0) + 1.0 / (RERANK_RRF_K + candidate as f32 + 1.0)
                }
            };
            out[candidate] = Reranked {
                candidate,
                reranker_score,
                reranker_rank: rank0 + 1,
                score,
            };
        }
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.candidate.cmp(&b.candidate)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // First stage: A B C D E (indexes 0..5). The reranker prefers B, C, then A.
    const SCORES: [f32; 5] = [0.30, 0.90, 0.80, 0.10, 0.20];

    fn order(out: &[Reranked]) -> Vec<usize> {
        out.iter().map(|r| r.candidate).collect()
    }

    #[test]
    fn replace_reorders_but_fuse_keeps_the_strong_first_stage_hit_on_top() {
        assert_eq!(order(&Rerank::Replace.apply(&SCORES)), [1, 2, 0, 4, 3]);
        assert_eq!(order(&Rerank::Fuse { weight: 0.5 }.apply(&SCORES)), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn fused_scores_match_a_hand_computation() {
        let out = Rerank::Fuse { weight: 0.5 }.apply(&SCORES);
        // candidate -> (reranker rank, first-stage rank)
        let ranks = [(3, 1), (1, 2), (2, 3), (5, 4), (4, 5)];
        for r in &out {
            let (rr, fr) = ranks[r.candidate];
            assert_eq!(r.reranker_rank, rr);
            let hand = 0.5 / (60.0 + rr as f32) + 1.0 / (60.0 + fr as f32);
            assert!(
                (r.score - hand).abs() < 1e-7,
                "candidate {}: {} vs {hand}",
                r.candidate,
                r.score
            );
            assert_eq!(r.reranker_score, SCORES[r.candidate]);
        }
        let a = out.iter().find(|r| r.candidate == 0).unwrap();
        assert!((a.score - (0.5 / 63.0 + 1.0 / 61.0)).abs() < 1e-7);
    }

    #[test]
    fn weight_zero_keeps_the_first_stage_and_a_huge_weight_gives_the_rerankers_order() {
        let scores: Vec<f32> = (0..50).map(|i| ((i * 37) % 50) as f32 / 50.0).collect();
        assert_eq!(
            order(&Rerank::Fuse { weight: 0.0 }.apply(&scores)),
            (0..50).collect::<Vec<_>>()
        );
        assert_eq!(
            order(&Rerank::Fuse { weight: 1e6 }.apply(&scores)),
            order(&Rerank::Replace.apply(&scores))
        );
    }

    #[test]
    fn ties_go_to_the_better_first_stage_rank() {
        assert_eq!(order(&Rerank::Replace.apply(&[0.5, 0.5, 0.9])), [2, 0, 1]);
        assert!(Rerank::Replace.apply(&[]).is_empty());
    }
}
