//! [`FlatIndex`]: exact brute-force search over contiguous vectors.
//!
//! Used on its own for small collections, inside [`HnswIndex`](crate::HnswIndex) below its
//! size threshold and for very selective filters, and as ground truth in tests and benches.

use std::path::Path;

use crate::dense::{DenseIndex, SearchParams};
use crate::error::Result;
use crate::filter::AllowSet;
use crate::hit::{DocId, Hit};
use crate::metric::Metric;
use crate::persist;
use crate::vectors::VectorStore;

const MAGIC: &[u8; 8] = b"SIEVFLAT";
const VERSION: u32 = 1;
const FILE: &str = "flat.vectors";

/// Exact nearest-neighbour search: every query scores every live vector.
///
/// ```
/// use sieve_index::{DenseIndex, FlatIndex, Metric, SearchParams};
///
/// let mut index = FlatIndex::new(2, Metric::Euclidean);
/// index.insert(&[(10, &[0.0, 0.0][..]), (11, &[3.0, 4.0][..])])?;
/// let hits = index.search(&[3.0, 3.0], 2, &SearchParams::default(), None)?;
/// assert_eq!((hits[0].id, hits[0].score), (11, -1.0));
/// # Ok::<(), sieve_index::IndexError>(())
/// ```
#[derive(Debug, Clone)]
pub struct FlatIndex {
    store: VectorStore,
}

impl FlatIndex {
    /// An empty index of `dim`-dimensional vectors compared with `metric`.
    ///
    /// ```
    /// use sieve_index::{DenseIndex, FlatIndex, Metric};
    ///
    /// let mut index = FlatIndex::new(2, Metric::Cosine);
    /// index.insert(&[(1, &[3.0, 4.0][..])])?;
    /// assert_eq!(index.vector(1), Some(&[0.6, 0.8][..])); // stored at unit length under cosine
    /// # Ok::<(), sieve_index::IndexError>(())
    /// ```
    pub fn new(dim: usize, metric: Metric) -> Self {
        FlatIndex {
            store: VectorStore::new(dim, metric),
        }
    }

    /// Reads an index written by [`DenseIndex::save`].
    ///
    /// ```no_run
    /// use sieve_index::FlatIndex;
    /// let index = FlatIndex::load(std::path::Path::new("my-index"))?;
    /// # Ok::<(), sieve_index::IndexError>(())
    /// ```
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE);
        let payload = persist::read_checked(&path, MAGIC, VERSION)?;
        Ok(FlatIndex {
            store: VectorStore::from_bytes(&payload, &path)?,
        })
    }

    /// The stored (metric-prepared) vector of `id`: unit length under cosine.
    pub fn vector(&self, id: DocId) -> Option<&[f32]> {
        self.store.slot(id).map(|slot| self.store.vector(slot))
    }

    /// Ids of the live documents.
    pub fn ids(&self) -> impl Iterator<Item = DocId> + '_ {
        self.store.live_docs().iter()
    }
}

impl DenseIndex for FlatIndex {
    fn dim(&self) -> usize {
        self.store.dim()
    }

    fn metric(&self) -> Metric {
        self.store.metric()
    }

    fn insert(&mut self, points: &[(DocId, &[f32])]) -> Result<()> {
        self.store.check(points)?;
        self.store.push(points);
        self.compact_if_sparse();
        Ok(())
    }

    fn remove(&mut self, ids: &[DocId]) -> usize {
        let removed = self.store.remove(ids);
        self.compact_if_sparse();
        removed
    }

    fn search(&self, query: &[f32], k: usize, _params: &SearchParams, filter: Option<&AllowSet>) -> Result<Vec<Hit>> {
        let query = self.store.prepare_query(query)?;
        Ok(self.store.exact_search(&query, k, filter))
    }

    fn len(&self) -> usize {
        self.store.len()
    }

    fn contains(&self, id: DocId) -> bool {
        self.store.contains(id)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        persist::ensure_dir(dir)?;
        persist::write_checked(&dir.join(FILE), MAGIC, VERSION, &self.store.compacted().to_bytes())
    }
}

impl FlatIndex {
    // Dead rows cost scan time; drop them once they outnumber the live ones.
    fn compact_if_sparse(&mut self) {
        if self.store.dead() > 64 && self.store.dead() > self.store.len() {
            self.store = self.store.compacted();
        }
    }
}
