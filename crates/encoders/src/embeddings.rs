//! Encoder outputs: dense embeddings as one row-major matrix, sparse embeddings as sorted
//! (token id, weight) lists.

/// `n` dense embeddings of `dim` floats each, stored row-major in one buffer.
///
/// ```
/// use sieve_encoders::Embeddings;
/// let e = Embeddings::new(vec![1.0, 0.0, 0.0, 1.0], 2).unwrap();
/// assert_eq!(e.shape(), [2, 2]);
/// assert_eq!(e.row(1), &[0.0, 1.0]);
/// let rows: Vec<Vec<f32>> = e.into();
/// assert_eq!(rows.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    data: Vec<f32>,
    dim: usize,
}

impl Embeddings {
    /// Wraps row-major `data`; `None` unless its length is a multiple of `dim`.
    pub fn new(data: Vec<f32>, dim: usize) -> Option<Self> {
        (dim > 0 && data.len().is_multiple_of(dim) || data.is_empty()).then_some(Self { data, dim })
    }

    /// Builds from rows; `None` when they differ in length.
    pub fn from_rows(rows: &[Vec<f32>]) -> Option<Self> {
        let dim = rows.first().map_or(0, Vec::len);
        if rows.iter().any(|r| r.len() != dim) {
            return None;
        }
        Some(Self {
            data: rows.concat(),
            dim,
        })
    }

    /// `[rows, dim]`, like `tensor.shape` in Python.
    pub fn shape(&self) -> [usize; 2] {
        [self.len(), self.dim]
    }

    /// Number of embeddings.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether there are no embeddings.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Width of each embedding.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Embedding `i`.
    ///
    /// # Panics
    /// When `i >= len()`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Iterates over the embeddings.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[f32]> + '_ {
        self.data.chunks_exact(self.dim.max(1))
    }

    /// The row-major buffer.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Copies into one `Vec` per embedding.
    pub fn to_vec(&self) -> Vec<Vec<f32>> {
        self.rows().map(<[f32]>::to_vec).collect()
    }
}

impl From<Embeddings> for Vec<Vec<f32>> {
    fn from(e: Embeddings) -> Self {
        e.to_vec()
    }
}

/// One sparse vector: ascending token ids and their (positive) weights.
///
/// ```
/// use sieve_encoders::SparseVector;
///
/// let a = SparseVector { indices: vec![3, 7, 9], values: vec![0.5, 2.0, 1.0] };
/// let b = SparseVector { indices: vec![7, 9], values: vec![1.0, 3.0] };
/// assert_eq!(a.dot(&b), 5.0);
/// assert_eq!(a.top_k(2), SparseVector { indices: vec![7, 9], values: vec![2.0, 1.0] });
/// ```
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SparseVector {
    /// Token ids, ascending.
    pub indices: Vec<u32>,
    /// Weight of each id in `indices`.
    pub values: Vec<f32>,
}

impl SparseVector {
    /// Number of non-zero dimensions.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Dot product with another sparse vector (both sorted), by a merge of the two id lists.
    pub fn dot(&self, other: &SparseVector) -> f32 {
        let (mut i, mut j, mut sum) = (0, 0, 0.0f32);
        while i < self.indices.len() && j < other.indices.len() {
            match self.indices[i].cmp(&other.indices[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    sum += self.values[i] * other.values[j];
                    i += 1;
                    j += 1;
                }
            }
        }
        sum
    }

    /// The vector with all `dim` entries.
    pub fn to_dense(&self, dim: usize) -> Vec<f32> {
        let mut dense = vec![0.0; dim];
        for (&i, &v) in self.indices.iter().zip(&self.values) {
            if let Some(slot) = dense.get_mut(i as usize) {
                *slot = v;
            }
        }
        dense
    }

    /// Keeps the `k` largest weights (ties to the lower id), ids still ascending.
    pub fn top_k(&self, k: usize) -> SparseVector {
        if self.nnz() <= k {
            return self.clone();
        }
        let mut order: Vec<usize> = (0..self.nnz()).collect();
        order.sort_by(|&a, &b| self.values[b].total_cmp(&self.values[a]).then(a.cmp(&b)));
        order.truncate(k);
        order.sort_unstable();
        SparseVector {
            indices: order.iter().map(|&i| self.indices[i]).collect(),
            values: order.iter().map(|&i| self.values[i]).collect(),
        }
    }
}

/// Sparse embeddings over a vocabulary of `dim` tokens.
///
/// ```
/// use sieve_encoders::{SparseEmbeddings, SparseVector};
/// let v = SparseVector { indices: vec![3, 7], values: vec![0.5, 2.0] };
/// let e = SparseEmbeddings::new(vec![v], 10);
/// assert_eq!(e.shape(), [1, 10]);
/// assert_eq!(e.row(0).to_dense(10)[7], 2.0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SparseEmbeddings {
    rows: Vec<SparseVector>,
    dim: usize,
}

impl SparseEmbeddings {
    /// Wraps sparse rows over a vocabulary of `dim`.
    pub fn new(rows: Vec<SparseVector>, dim: usize) -> Self {
        Self { rows, dim }
    }

    /// `[rows, vocabulary size]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows.len(), self.dim]
    }

    /// Number of embeddings.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Vocabulary size.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Embedding `i`.
    pub fn row(&self, i: usize) -> &SparseVector {
        &self.rows[i]
    }

    /// All embeddings.
    pub fn rows(&self) -> &[SparseVector] {
        &self.rows
    }

    /// Takes the rows out.
    pub fn into_rows(self) -> Vec<SparseVector> {
        self.rows
    }
}

/// `SparseEncoder.sparsity()`: how many dimensions are active, on average.
///
/// ```
/// use sieve_encoders::{SparseEmbeddings, SparseVector, Sparsity};
///
/// let rows = vec![
///     SparseVector { indices: vec![1, 2], values: vec![1.0, 1.0] },
///     SparseVector { indices: vec![5, 6, 7, 8], values: vec![1.0; 4] },
/// ];
/// let stats = Sparsity::of(&SparseEmbeddings::new(rows, 100));
/// assert_eq!(stats.active_dims, 3.0);
/// assert!((stats.sparsity_ratio - 0.97).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sparsity {
    /// Mean number of non-zero dimensions per embedding.
    pub active_dims: f32,
    /// Mean fraction of zero dimensions, `1 - active_dims / dim`.
    pub sparsity_ratio: f32,
}

impl Sparsity {
    /// Statistics of `embeddings`.
    pub fn of(embeddings: &SparseEmbeddings) -> Self {
        if embeddings.is_empty() {
            return Self {
                active_dims: 0.0,
                sparsity_ratio: 1.0,
            };
        }
        let active = embeddings.rows.iter().map(|r| r.nnz() as f64).sum::<f64>() / embeddings.len() as f64;
        Self {
            active_dims: active as f32,
            sparsity_ratio: (1.0 - active / embeddings.dim.max(1) as f64) as f32,
        }
    }
}
