//! Similarity metrics for dense vectors, and the input checks every index applies.

use serde::{Deserialize, Serialize};

use crate::error::{IndexError, Result};

/// How two dense vectors are compared. Scores are similarities: higher is closer.
///
/// The names follow sentence-transformers' `similarity_fn_name`, so a model's own metric can
/// be passed straight through with [`Metric::from_name`].
///
/// ```
/// use sieve_index::Metric;
///
/// let (a, b) = ([3.0, 4.0], [3.0, 0.0]);
/// assert_eq!(Metric::Dot.score(&a, &b), 9.0);
/// assert_eq!(Metric::Euclidean.score(&a, &b), -4.0);
/// // Cosine compares vectors prepared to unit length, as indexes store them.
/// let (a, b) = (Metric::Cosine.prepare(&a), Metric::Cosine.prepare(&b));
/// assert!((Metric::Cosine.score(&a, &b) - 0.6).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Metric {
    /// Cosine similarity. Vectors are normalised once on insert.
    #[default]
    Cosine,
    /// Inner product, for models trained for it.
    Dot,
    /// Negative Euclidean distance.
    Euclidean,
    /// Negative Manhattan (L1) distance.
    Manhattan,
}

impl Metric {
    /// Parses a sentence-transformers similarity name (`cosine`, `dot`, `euclidean`, `manhattan`).
    ///
    /// ```
    /// use sieve_index::Metric;
    /// assert_eq!(Metric::from_name("dot")?, Metric::Dot);
    /// assert!(Metric::from_name("hamming").is_err());
    /// # Ok::<(), sieve_index::IndexError>(())
    /// ```
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "cosine" => Ok(Metric::Cosine),
            "dot" | "dot_product" => Ok(Metric::Dot),
            "euclidean" => Ok(Metric::Euclidean),
            "manhattan" => Ok(Metric::Manhattan),
            other => Err(IndexError::InvalidParameter(format!(
                "unknown metric {other:?}; expected cosine, dot, euclidean or manhattan"
            ))),
        }
    }

    /// The sentence-transformers name of this metric.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::Euclidean => "euclidean",
            Metric::Manhattan => "manhattan",
        }
    }

    /// Similarity of a query and a stored vector, both already [`prepare`](Self::prepare)d.
    #[inline]
    pub fn score(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::Cosine | Metric::Dot => dot(a, b),
            Metric::Euclidean => -squared_l2(a, b).sqrt(),
            Metric::Manhattan => -l1(a, b),
        }
    }

    /// Turns a raw vector into the form the metric compares: unit length for cosine
    /// (a zero vector stays zero and scores 0 against everything), unchanged otherwise.
    pub fn prepare(self, v: &[f32]) -> Vec<f32> {
        let mut out = v.to_vec();
        if self == Metric::Cosine {
            let norm = dot(v, v).sqrt();
            if norm > 0.0 {
                out.iter_mut().for_each(|x| *x /= norm);
            }
        }
        out
    }
}

/// Checks that `v` has `dim` components, all finite. `what` names the vector in the error.
pub(crate) fn validate(what: impl FnOnce() -> String, v: &[f32], dim: usize) -> Result<()> {
    if v.len() != dim {
        return Err(IndexError::DimensionMismatch {
            expected: dim,
            found: v.len(),
        });
    }
    if let Some((position, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(IndexError::NonFinite {
            what: what(),
            position,
            value,
        });
    }
    Ok(())
}

// Eight independent accumulators let the compiler vectorise without `-ffast-math`.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

#[inline]
pub(crate) fn squared_l2(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| (x - y) * (x - y)).sum();
    acc.iter().sum::<f32>() + tail
}

#[inline]
pub(crate) fn l1(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += (x[i] - y[i]).abs();
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| (x - y).abs()).sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_naive_sums() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..19).map(|i| (i as f32).sin()).collect();
        let naive_dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let naive_l2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        let naive_l1: f32 = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum();
        assert!((dot(&a, &b) - naive_dot).abs() < 1e-4);
        assert!((squared_l2(&a, &b) - naive_l2).abs() < 1e-3);
        assert!((l1(&a, &b) - naive_l1).abs() < 1e-4);
    }

    #[test]
    fn cosine_prepare_normalises_and_keeps_zero() {
        let v = Metric::Cosine.prepare(&[3.0, 4.0]);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert_eq!(Metric::Cosine.prepare(&[0.0, 0.0]), vec![0.0, 0.0]);
        assert_eq!(Metric::Dot.prepare(&[3.0, 4.0]), vec![3.0, 4.0]);
    }

    #[test]
    fn validate_names_the_problem() {
        assert!(matches!(
            validate(|| "q".into(), &[1.0], 2),
            Err(IndexError::DimensionMismatch { expected: 2, found: 1 })
        ));
        let err = validate(|| "document 7".into(), &[1.0, f32::NAN], 2).unwrap_err();
        assert!(
            err.to_string().contains("document 7") && err.to_string().contains("position 1"),
            "{err}"
        );
        assert!(validate(|| "q".into(), &[1.0, f32::INFINITY], 2).is_err());
    }
}
