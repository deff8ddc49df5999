//! The rerank stage: how cross-encoder scores turn a first-stage ranking into the final one.

use serde::{Deserialize, Serialize};

/// How the reranker's ranking combines with the first stage's.
///
/// A small reranker on a domain it barely knows can rank worse than a good hybrid first
/// stage; fused with the first stage's ranking it still adds to it. [`Rerank::Fuse`] is the
/// default for that reason; [`Rerank::Replace`] returns the reranker's order alone.
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

impl Default for Rerank {
    fn default() -> Self {
        Rerank::Fuse { weight: 0.5 }
    }
}

/// RRF offset of [`Rerank::Fuse`].
pub const RERANK_RRF_K: f32 = 60.0;

/// One candidate after the rerank stage.
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
            Reranked { candidate: 0, reranker_score: 0.0, reranker_rank: 0, score: 0.0 };
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
            out[candidate] = Reranked { candidate, reranker_score, reranker_rank: rank0 + 1, score };
        }
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.candidate.cmp(&b.candidate)));
        out
    }
}
