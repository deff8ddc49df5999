//! The role of a dense-vector index, shared by [`FlatIndex`](crate::FlatIndex) and
//! [`HnswIndex`](crate::HnswIndex).

use std::path::Path;

use crate::error::Result;
use crate::filter::AllowSet;
use crate::hit::{DocId, Hit};
use crate::metric::Metric;

/// Per-query knobs of a dense search.
///
/// ```
/// use sieve_index::{DenseIndex, HnswIndex, HnswParams, Metric, SearchParams};
///
/// let mut index = HnswIndex::new(2, Metric::Dot, HnswParams::default())?;
/// index.insert(&[(1, &[1.0, 0.0][..]), (2, &[0.0, 1.0][..])])?;
/// let wider = SearchParams { ef_search: Some(400), ..SearchParams::default() };
/// let exact = SearchParams { exact: true, ..SearchParams::default() };
/// assert_eq!(index.search(&[0.2, 0.9], 1, &wider, None)?, index.search(&[0.2, 0.9], 1, &exact, None)?);
/// # Ok::<(), sieve_index::IndexError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchParams {
    /// HNSW candidate-list width; `None` uses the index's `ef_search`. Ignored by exact indexes.
    pub ef_search: Option<usize>,
    /// Force an exact scan even on an approximate index.
    pub exact: bool,
}

/// A nearest-neighbour index over dense vectors keyed by [`DocId`].
///
/// Inserting an id that is already present replaces its vector. Every method validates its
/// input (dimension, finiteness) and reports problems as [`IndexError`](crate::IndexError).
///
/// ```
/// use sieve_index::{DenseIndex, FlatIndex, HnswIndex, HnswParams, Metric, SearchParams};
///
/// // Code written against the trait runs on the exact and the approximate index alike.
/// fn nearest(index: &mut dyn DenseIndex) -> sieve_index::Result<u32> {
///     index.insert(&[(1, &[1.0, 0.0][..]), (2, &[0.0, 1.0][..])])?;
///     Ok(index.search(&[0.1, 0.9], 1, &SearchParams::default(), None)?[0].id)
/// }
/// assert_eq!(nearest(&mut FlatIndex::new(2, Metric::Cosine))?, 2);
/// assert_eq!(nearest(&mut HnswIndex::new(2, Metric::Cosine, HnswParams::default())?)?, 2);
/// # Ok::<(), sieve_index::IndexError>(())
/// ```
pub trait DenseIndex: Send + Sync {
    /// Vector length this index holds.
    fn dim(&self) -> usize;
    /// How vectors are compared.
    fn metric(&self) -> Metric;
    /// Adds (or replaces) vectors. All are validated before any is inserted.
    fn insert(&mut self, points: &[(DocId, &[f32])]) -> Result<()>;
    /// Removes ids; unknown ids are ignored. Returns how many were present.
    fn remove(&mut self, ids: &[DocId]) -> usize;
    /// The best `k` live documents for `query`, best first, restricted to `filter` if given.
    fn search(&self, query: &[f32], k: usize, params: &SearchParams, filter: Option<&AllowSet>) -> Result<Vec<Hit>>;
    /// Number of live documents.
    fn len(&self) -> usize;
    /// Whether no live document is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether `id` is present.
    fn contains(&self, id: DocId) -> bool;
    /// Writes the index into `dir` (created if missing), replacing what was there.
    fn save(&self, dir: &Path) -> Result<()>;
}
