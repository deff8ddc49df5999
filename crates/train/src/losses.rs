//! sentence-transformers' training losses, named and defined as in sentence-transformers 6.2,
//! over the gradient-tracked outputs of a [`TrainableModel`](sieve_encoders::training::TrainableModel).
//!
//! Each loss takes the model's outputs for the columns of a batch (anchors, positives,
//! negatives…, or logits) and returns a one-element tensor to call `backward()` on.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use sieve_train::losses::DenseLoss;
//!
//! let device = Device::flex();
//! let anchors = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &device);
//! let positives = Tensor::<2>::from_floats([[0.9, 0.1], [0.1, 0.9]], &device);
//! let loss = DenseLoss::default().compute(&[anchors, positives], None)?;
//! assert!(loss.into_scalar::<f32>() < 0.01); // each anchor is closest to its own positive
//! # Ok::<(), sieve_train::TrainError>(())
//! ```

use burn::tensor::{Tensor, TensorData};
use sieve_encoders::ScoreActivation;

use crate::{Result, TrainError};

/// Losses for bi-encoders (`SentenceTransformer`).
#[derive(Debug, Clone, PartialEq)]
pub enum DenseLoss {
    /// `MultipleNegativesRankingLoss`: for each anchor, softmax cross-entropy over its positive
    /// against every other candidate in the batch (the other positives and all hard negatives),
    /// on cosine similarities times `scale` (20). Columns: anchor, positive, negatives….
    MultipleNegativesRanking {
        /// Multiplies the cosine similarities (an inverse temperature).
        scale: f32,
    },
    /// `CoSENTLoss`: `log(1 + Σ exp(s_i − s_j))` over the pairs whose gold score ranks `i` below
    /// `j`, on scaled cosine similarities. Columns: sentence1, sentence2; one score per pair.
    CoSent {
        /// Multiplies the cosine similarities (20).
        scale: f32,
    },
    /// `CosineSimilarityLoss`: mean squared error between the pairs' cosine similarity and
    /// their gold score. Columns: sentence1, sentence2; one score per pair.
    CosineSimilarity,
    /// `MatryoshkaLoss`: `inner` on the embeddings cut to each of `dims` (and renormalised),
    /// weighted and summed, so that leading dimensions carry the meaning.
    Matryoshka {
        /// The loss applied at every width.
        inner: Box<DenseLoss>,
        /// Widths, each at most the model's.
        dims: Vec<usize>,
        /// One weight per width.
        weights: Vec<f32>,
    },
}

impl Default for DenseLoss {
    /// `MultipleNegativesRankingLoss` with scale 20.
    fn default() -> Self {
        Self::MultipleNegativesRanking { scale: 20.0 }
    }
}

impl DenseLoss {
    /// The name sentence-transformers gives the loss.
    pub fn name(&self) -> String {
        match self {
            Self::MultipleNegativesRanking { .. } => "MultipleNegativesRankingLoss".into(),
            Self::CoSent { .. } => "CoSENTLoss".into(),
            Self::CosineSimilarity => "CosineSimilarityLoss".into(),
            Self::Matryoshka { inner, .. } => format!("MatryoshkaLoss({})", inner.name()),
        }
    }

    /// Whether the loss reads a gold score per example (CoSENT, cosine similarity).
    pub fn needs_scores(&self) -> bool {
        match self {
            Self::CoSent { .. } | Self::CosineSimilarity => true,
            Self::MultipleNegativesRanking { .. } => false,
            Self::Matryoshka { inner, .. } => inner.needs_scores(),
        }
    }

    /// The loss of one batch: `columns` are the embeddings `[batch, dim]` of each column,
    /// `scores` the gold score per example where the loss needs one.
    pub fn compute(&self, columns: &[Tensor<2>], scores: Option<&[f32]>) -> Result<Tensor<1>> {
        check_columns(columns)?;
        match self {
            Self::MultipleNegativesRanking { scale } => {
                if columns.len() < 2 {
                    return Err(invalid(
                        "MultipleNegativesRankingLoss needs an anchor and a positive column",
                    ));
                }
                Ok(multiple_negatives_ranking(
                    &columns[0],
                    &columns[1..],
                    *scale,
                    Similarity::Cosine,
                ))
            }
            Self::CoSent { scale } => {
                let (a, b, scores) = scored_pair(columns, scores, "CoSENTLoss")?;
                Ok(cosent(a, b, scores, *scale))
            }
            Self::CosineSimilarity => {
                let (a, b, scores) = scored_pair(columns, scores, "CosineSimilarityLoss")?;
                let cos = pairwise_cosine(a.clone(), b.clone());
                let gold = constant(scores.to_vec(), [scores.len()], &cos);
                Ok((cos - gold).powi_scalar(2).mean())
            }
            Self::Matryoshka { inner, dims, weights } => {
                if dims.is_empty() || dims.len() != weights.len() {
                    return Err(invalid(
                        "MatryoshkaLoss needs one weight per dimension, and at least one",
                    ));
                }
                let width = columns[0].dims()[1];
                if let Some(d) = dims.iter().find(|&&d| d == 0 || d > width) {
                    return Err(invalid(&format!(
                        "MatryoshkaLoss dimension {d} is outside 1..={width} (the model's embedding width)"
                    )));
                }
                let mut order: Vec<(usize, f32)> = dims.iter().copied().zip(weights.iter().copied()).collect();
                order.sort_by_key(|&(dim, _)| std::cmp::Reverse(dim));
                let mut total: Option<Tensor<1>> = None;
                for (dim, weight) in order {
                    let cut: Vec<Tensor<2>> = columns.iter().map(|c| normalize(c.clone().narrow(1, 0, dim))).collect();
                    let part = inner.compute(&cut, scores)? * weight;
                    total = Some(match total {
                        Some(t) => t + part,
                        None => part,
                    });
                }
                Ok(total.expect("at least one dimension"))
            }
        }
    }
}

/// Losses for rerankers (`CrossEncoder` with one label).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CrossLoss {
    /// `BinaryCrossEntropyLoss`: sigmoid cross-entropy of each pair's logit against its 0/1
    /// (or soft) label; `pos_weight` scales the positive term as in `BCEWithLogitsLoss`.
    BinaryCrossEntropy {
        /// Weight of positive examples (1 by default).
        pos_weight: f32,
    },
    /// `ListNetLoss`: per query, cross-entropy between the softmax of its documents' logits and
    /// the softmax of their labels (one positive labelled 1 and n negatives labelled 0). With
    /// 1/0 labels the target is soft (e / (e + n) for the positive), so the loss only asks for a
    /// logit margin of 1.
    ListNet,
    /// `MultipleNegativesRankingLoss` for cross-encoders: per query, softmax cross-entropy of
    /// `scale · activation(logit)` over its positive, its hard negatives and `num_negatives`
    /// documents of the other queries in the batch (`None`: all of them), the positive the
    /// target. sentence-transformers' defaults are 4, 10 and sigmoid. `Some(0)` (which
    /// sentence-transformers refuses) keeps the hard negatives alone: with scale 1 and the
    /// identity, the plain softmax over one positive and n negatives.
    MultipleNegativesRanking {
        /// Documents of other queries added as negatives (sampled with the run's seed when
        /// fewer than there are; `None`: all).
        num_negatives: Option<usize>,
        /// Multiplies the activated logits.
        scale: f32,
        /// Applied to the logits first (`Identity` or `Sigmoid`).
        activation: ScoreActivation,
    },
}

impl Default for CrossLoss {
    /// `BinaryCrossEntropyLoss`.
    fn default() -> Self {
        Self::BinaryCrossEntropy { pos_weight: 1.0 }
    }
}

impl CrossLoss {
    /// sentence-transformers' `MultipleNegativesRankingLoss()` for cross-encoders: 4 in-batch
    /// negatives, scale 10, sigmoid.
    pub const MULTIPLE_NEGATIVES_RANKING: Self = Self::MultipleNegativesRanking {
        num_negatives: Some(4),
        scale: 10.0,
        activation: ScoreActivation::Sigmoid,
    };

    /// Softmax cross-entropy over each query's positive and hard negatives alone, on the raw
    /// logits: `MultipleNegativesRanking` with no in-batch negatives, scale 1, the identity.
    pub const SOFTMAX: Self = Self::MultipleNegativesRanking {
        num_negatives: Some(0),
        scale: 1.0,
        activation: ScoreActivation::Identity,
    };

    /// The name sentence-transformers gives the loss.
    pub fn name(&self) -> &'static str {
        match self {
            Self::BinaryCrossEntropy { .. } => "BinaryCrossEntropyLoss",
            Self::ListNet => "ListNetLoss",
            Self::MultipleNegativesRanking { .. } => "MultipleNegativesRankingLoss",
        }
    }

    /// The loss for a log line: its sentence-transformers name, or what it computes where the
    /// settings make it another loss ([`Self::SOFTMAX`]).
    ///
    /// ```
    /// use sieve_train::losses::CrossLoss;
    ///
    /// assert_eq!(CrossLoss::ListNet.description(), "ListNetLoss");
    /// assert!(CrossLoss::SOFTMAX.description().starts_with("softmax cross-entropy"));
    /// ```
    pub fn description(&self) -> String {
        match self {
            Self::MultipleNegativesRanking {
                num_negatives: Some(0),
                scale,
                activation: ScoreActivation::Identity,
            } => format!(
                "softmax cross-entropy over the positive and the hard negatives \
                 (MultipleNegativesRankingLoss without in-batch negatives, scale {scale})"
            ),
            _ => self.name().into(),
        }
    }

    /// The loss of one batch: `logits` `[pairs, 1]` in the order of `labels`, grouped by query
    /// as `group_sizes` says (for ListNet and MultipleNegativesRanking, whose groups start with
    /// the positive; BCE ignores the grouping and MultipleNegativesRanking the labels).
    pub fn compute(&self, logits: Tensor<2>, labels: &[f32], group_sizes: &[usize]) -> Result<Tensor<1>> {
        let [n, num_labels] = logits.dims();
        if num_labels != 1 {
            return Err(invalid(&format!(
                "{} needs a cross-encoder with 1 output label, this one has {num_labels}",
                self.name()
            )));
        }
        if labels.len() != n {
            return Err(invalid(&format!("{n} logits but {} labels", labels.len())));
        }
        let x = logits.reshape([n]);
        match *self {
            Self::BinaryCrossEntropy { pos_weight } => {
                let y = constant(labels.to_vec(), [n], &x);
                let weight = constant(labels.iter().map(|l| 1.0 + (pos_weight - 1.0) * l).collect(), [n], &x);
                // (1 − y)·x + w·(log(1 + e^−|x|) + max(−x, 0)), PyTorch's stable form.
                let softplus = x.clone().abs().neg().exp().log1p() + x.clone().neg().clamp_min(0.0);
                Ok(((y.neg() + 1.0) * x + weight * softplus).mean())
            }
            Self::ListNet => {
                if group_sizes.iter().sum::<usize>() != n || group_sizes.contains(&0) {
                    return Err(invalid(
                        "ListNetLoss: the query groups must cover the pairs, none empty",
                    ));
                }
                let mut total: Option<Tensor<1>> = None;
                let mut start = 0;
                for &size in group_sizes {
                    let row = x.clone().narrow(0, start, size).reshape([1, size]);
                    let gold = softmax_host(&labels[start..start + size]);
                    let target = constant(gold, [1, size], &row);
                    let log_softmax = row.clone() - logsumexp_rows(row).reshape([1, 1]);
                    let part = (target * log_softmax).sum().neg();
                    total = Some(match total {
                        Some(t) => t + part,
                        None => part,
                    });
                    start += size;
                }
                Ok(total.expect("at least one group") / group_sizes.len() as f32)
            }
            Self::MultipleNegativesRanking { scale, activation, .. } => {
                if group_sizes.iter().sum::<usize>() != n || group_sizes.iter().any(|&g| g < 2) {
                    return Err(invalid(
                        "MultipleNegativesRankingLoss: the query groups must cover the pairs, each a positive and a negative at least",
                    ));
                }
                let x = match activation {
                    ScoreActivation::Identity => x,
                    ScoreActivation::Sigmoid => burn::tensor::activation::sigmoid(x),
                    other => {
                        return Err(invalid(&format!(
                            "MultipleNegativesRankingLoss: no {other:?} activation"
                        )));
                    }
                } * scale;
                let mut total: Option<Tensor<1>> = None;
                let mut start = 0;
                for &size in group_sizes {
                    let row = x.clone().narrow(0, start, size).reshape([1, size]);
                    let positive = row.clone().narrow(1, 0, 1).reshape([1]);
                    let part = logsumexp_rows(row) - positive;
                    total = Some(match total {
                        Some(t) => t + part,
                        None => part,
                    });
                    start += size;
                }
                Ok(total.expect("at least one group") / group_sizes.len() as f32)
            }
        }
    }
}

/// `SpladeLoss` for SPLADE models (`SparseEncoder`): `SparseMultipleNegativesRankingLoss` (dot
/// products, scale 1) plus FLOPS regularisers, `Σ_j (mean_i x_ij)²`, on the documents
/// (positives and negatives) and on the queries, each with its weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpladeLoss {
    /// Weight of the FLOPS regulariser on the documents.
    pub document_regularizer_weight: f32,
    /// Weight of the FLOPS regulariser on the queries (`None`: not regularised).
    pub query_regularizer_weight: Option<f32>,
    /// Multiplies the dot products in the ranking loss (1).
    pub scale: f32,
}

impl Default for SpladeLoss {
    /// Document weight 3e-3 and query weight 5e-3, sentence-transformers' SPLADE recipe.
    fn default() -> Self {
        Self {
            document_regularizer_weight: 3e-3,
            query_regularizer_weight: Some(5e-3),
            scale: 1.0,
        }
    }
}

impl SpladeLoss {
    /// The name sentence-transformers gives the loss.
    pub fn name(&self) -> &'static str {
        "SpladeLoss"
    }

    /// The loss of one batch of sparse activations `[batch, vocab]` per column (query,
    /// positive, negatives…), and its three parts (ranking, document and query regularisers).
    pub fn compute(&self, columns: &[Tensor<2>]) -> Result<(Tensor<1>, [Tensor<1>; 3])> {
        check_columns(columns)?;
        if columns.len() < 2 {
            return Err(invalid("SpladeLoss needs a query and a positive column"));
        }
        let base = multiple_negatives_ranking(&columns[0], &columns[1..], self.scale, Similarity::Dot);
        let documents = Tensor::cat(columns[1..].to_vec(), 0);
        let document = flops(documents) * self.document_regularizer_weight;
        let query = match self.query_regularizer_weight {
            Some(w) => flops(columns[0].clone()) * w,
            None => base.zeros_like(),
        };
        let total = base.clone() + document.clone() + query.clone();
        Ok((total, [base, document, query]))
    }
}

#[derive(Clone, Copy)]
enum Similarity {
    Cosine,
    Dot,
}

/// `MultipleNegativesRankingLoss.compute_loss_from_embeddings` with one direction.
fn multiple_negatives_ranking(
    anchors: &Tensor<2>,
    candidates: &[Tensor<2>],
    scale: f32,
    similarity: Similarity,
) -> Tensor<1> {
    let batch = anchors.dims()[0];
    let documents = Tensor::cat(candidates.to_vec(), 0);
    let columns = documents.dims()[0];
    let scores = match similarity {
        Similarity::Cosine => normalize(anchors.clone()).matmul(normalize(documents).transpose()),
        Similarity::Dot => anchors.clone().matmul(documents.transpose()),
    } * scale;
    let mut own = vec![0.0f32; batch * columns];
    (0..batch).for_each(|i| own[i * columns + i] = 1.0);
    let own = constant(own, [batch, columns], &scores);
    let positive = (scores.clone() * own).sum_dim(1).reshape([batch]);
    (logsumexp_rows(scores) - positive).mean()
}

/// `CoSENTLoss.compute_loss_from_embeddings`.
fn cosent(a: &Tensor<2>, b: &Tensor<2>, scores: &[f32], scale: f32) -> Tensor<1> {
    let n = scores.len();
    let s = pairwise_cosine(a.clone(), b.clone()) * scale;
    let diffs = s.clone().reshape([n, 1]) - s.reshape([1, n]);
    // Pairs (i, j) with score_i < score_j count; the rest are pushed to −1e12.
    let penalty: Vec<f32> = (0..n * n)
        .map(|k| if scores[k / n] < scores[k % n] { 0.0 } else { 1e12 })
        .collect();
    let diffs = (diffs - constant(penalty, [n, n], a)).reshape([1, n * n]);
    let all = Tensor::cat(vec![diffs.zeros_like().narrow(1, 0, 1), diffs], 1);
    logsumexp_rows(all)
}

/// `F.normalize(x, p=2, dim=1)`.
pub(crate) fn normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

fn pairwise_cosine(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    let n = a.dims()[0];
    (normalize(a) * normalize(b)).sum_dim(1).reshape([n])
}

/// `logsumexp` of each row, `[rows, cols]` → `[rows]`.
fn logsumexp_rows(x: Tensor<2>) -> Tensor<1> {
    let rows = x.dims()[0];
    let max = x.clone().max_dim(1).detach();
    ((x - max.clone()).exp().sum_dim(1).log() + max).reshape([rows])
}

/// `FlopsLoss`: `Σ_j (mean_i x_ij)²`.
fn flops(x: Tensor<2>) -> Tensor<1> {
    x.mean_dim(0).powi_scalar(2).sum()
}

/// Host values as a constant (not tracked) tensor on the device of `like`.
fn constant<const D: usize, const E: usize>(values: Vec<f32>, shape: [usize; D], like: &Tensor<E>) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), &like.device())
}

fn softmax_host(values: &[f32]) -> Vec<f32> {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = values.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

fn scored_pair<'a>(
    columns: &'a [Tensor<2>],
    scores: Option<&'a [f32]>,
    loss: &str,
) -> Result<(&'a Tensor<2>, &'a Tensor<2>, &'a [f32])> {
    let [a, b] = columns else {
        return Err(invalid(&format!("{loss} needs two columns, got {}", columns.len())));
    };
    let Some(scores) = scores else {
        return Err(invalid(&format!("{loss} needs a gold score per pair")));
    };
    if scores.len() != a.dims()[0] {
        return Err(invalid(&format!(
            "{loss}: {} pairs but {} scores",
            a.dims()[0],
            scores.len()
        )));
    }
    Ok((a, b, scores))
}

fn check_columns(columns: &[Tensor<2>]) -> Result<()> {
    let Some(first) = columns.first() else {
        return Err(invalid("a loss needs at least one column"));
    };
    if columns.iter().any(|c| c.dims() != first.dims()) {
        return Err(invalid(
            "every column of a batch must have the same number of rows and width",
        ));
    }
    Ok(())
}

fn invalid(message: &str) -> TrainError {
    TrainError::InvalidOption(message.to_string())
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;

    fn tensor(rows: &[[f32; 3]]) -> Tensor<2> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), 3]), &Device::flex())
    }

    fn value(t: Tensor<1>) -> f32 {
        t.into_scalar()
    }

    /// MNRL on two anchors and two positives, by hand.
    #[test]
    fn multiple_negatives_ranking_matches_a_hand_computation() {
        let a = tensor(&[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]);
        let p = tensor(&[[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]);
        let c = std::f32::consts::FRAC_1_SQRT_2;
        // Rows of cos × 20: [c, 0]·20 and [c, 1]·20; the positives sit on the diagonal.
        let row0 = (20.0 * c).exp() + 1.0;
        let row1 = (20.0 * c).exp() + 20f32.exp();
        let want = ((row0.ln() - 20.0 * c) + (row1.ln() - 20.0)) / 2.0;
        let got = value(DenseLoss::default().compute(&[a, p], None).unwrap());
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }

    #[test]
    fn cosent_counts_only_misordered_pairs() {
        let a = tensor(&[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]);
        let b = tensor(&[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]);
        // cos = [1, 0]; gold says pair 0 < pair 1: the one term is exp(20·(1 − 0)).
        let got = value(
            DenseLoss::CoSent { scale: 20.0 }
                .compute(&[a.clone(), b.clone()], Some(&[0.0, 1.0]))
                .unwrap(),
        );
        assert!((got - (1.0 + 20f32.exp()).ln()).abs() < 1e-3, "{got}");
        // Gold in the model's order: only exp(20·(0 − 1)) remains.
        let got = value(
            DenseLoss::CoSent { scale: 20.0 }
                .compute(&[a, b], Some(&[1.0, 0.0]))
                .unwrap(),
        );
        assert!((got - (1.0 + (-20f32).exp()).ln()).abs() < 1e-6, "{got}");
    }

    #[test]
    fn bad_batches_are_named() {
        let a = tensor(&[[1.0, 0.0, 0.0]]);
        let err = DenseLoss::CoSent { scale: 20.0 }
            .compute(&[a.clone(), a.clone()], None)
            .unwrap_err();
        assert!(err.to_string().contains("gold score"), "{err}");
        let err = DenseLoss::Matryoshka {
            inner: Box::new(DenseLoss::default()),
            dims: vec![4],
            weights: vec![1.0],
        }
        .compute(&[a.clone(), a.clone()], None)
        .unwrap_err();
        assert!(err.to_string().contains("dimension 4"), "{err}");
        let logits = Tensor::<2>::zeros([2, 1], &Device::flex());
        let err = CrossLoss::ListNet.compute(logits, &[1.0, 0.0], &[3]).unwrap_err();
        assert!(err.to_string().contains("groups"), "{err}");
    }

    #[test]
    fn binary_cross_entropy_is_stable_for_large_logits() {
        let logits = Tensor::<2>::from_floats([[100.0], [-100.0]], &Device::flex());
        let loss = value(CrossLoss::default().compute(logits, &[1.0, 0.0], &[1, 1]).unwrap());
        assert!(loss.is_finite() && loss < 1e-6, "{loss}");
    }
}
