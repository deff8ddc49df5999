//! The similarity functions of sentence-transformers (`SimilarityFunction`), with the same
//! definitions: cosine, dot, negative euclidean and negative manhattan distance.

use std::fmt;
use std::str::FromStr;

use crate::embeddings::Embeddings;
use crate::error::{EncoderError, Result};

/// How two embeddings are compared; higher is more similar for every variant.
///
/// ```
/// use sieve_encoders::{Embeddings, SimilarityFn};
/// let a = Embeddings::from_rows(&[vec![1.0, 0.0], vec![0.0, 2.0]]).unwrap();
/// let m = SimilarityFn::Cosine.matrix(&a, &a).unwrap();
/// assert!((m[0][0] - 1.0).abs() < 1e-6 && m[0][1].abs() < 1e-6);
/// assert_eq!(SimilarityFn::Euclidean.matrix(&a, &a).unwrap()[0][1], -(5.0f32).sqrt());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SimilarityFn {
    /// Cosine of the angle (each side L2-normalised, ε = 1e-12).
    #[default]
    Cosine,
    /// Plain dot product.
    Dot,
    /// Negative L2 distance.
    Euclidean,
    /// Negative L1 distance.
    Manhattan,
}

impl SimilarityFn {
    /// The name sentence-transformers writes in `similarity_fn_name`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cosine => "cosine",
            Self::Dot => "dot",
            Self::Euclidean => "euclidean",
            Self::Manhattan => "manhattan",
        }
    }

    /// Similarity of two vectors of equal length.
    pub fn pair(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Self::Cosine => {
                let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                dot(a, b) / (norm(a) * norm(b))
            }
            Self::Dot => dot(a, b),
            Self::Euclidean => -a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt(),
            Self::Manhattan => -a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>(),
        }
    }

    /// `[a.len(), b.len()]` matrix of similarities (`model.similarity(a, b)`).
    pub fn matrix(self, a: &Embeddings, b: &Embeddings) -> Result<Vec<Vec<f32>>> {
        check_dims(a, b)?;
        Ok(a.rows().map(|x| b.rows().map(|y| self.pair(x, y)).collect()).collect())
    }

    /// Similarity of each row of `a` with the same row of `b` (`model.similarity_pairwise`).
    pub fn pairwise(self, a: &Embeddings, b: &Embeddings) -> Result<Vec<f32>> {
        check_dims(a, b)?;
        if a.len() != b.len() {
            return Err(EncoderError::InvalidArgument(format!(
                "pairwise similarity needs as many rows on both sides, got {} and {}",
                a.len(),
                b.len()
            )));
        }
        Ok(a.rows().zip(b.rows()).map(|(x, y)| self.pair(x, y)).collect())
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn check_dims(a: &Embeddings, b: &Embeddings) -> Result<()> {
    if !a.is_empty() && !b.is_empty() && a.dim() != b.dim() {
        return Err(EncoderError::DimensionMismatch {
            expected: a.dim(),
            got: b.dim(),
        });
    }
    Ok(())
}

impl fmt::Display for SimilarityFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SimilarityFn {
    type Err = EncoderError;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "cosine" | "cos_sim" => Self::Cosine,
            "dot" | "dot_score" | "dot_product" => Self::Dot,
            "euclidean" | "euclidean_sim" => Self::Euclidean,
            "manhattan" | "manhattan_sim" => Self::Manhattan,
            other => {
                return Err(EncoderError::InvalidArgument(format!(
                    "unknown similarity function `{other}` (expected cosine, dot, euclidean or manhattan)"
                )));
            }
        })
    }
}
