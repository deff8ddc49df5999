//! First-stage retrievers: each pairs a model's view of the query with an index over the
//! collection's documents, kept in step with the store.
//!
//! A retriever is one file here: a [`Kind`] (when a collection has it, how its index loads
//! or is built from the store, how a query is encoded for it) and the [`RetrieverIndex`] it
//! keeps. [`KINDS`] registers them; the rest of the engine (opening, writes, checkpoints,
//! searches, `info`) iterates over the registered kinds and never names one.
//!
//! | retriever | model | index |
//! |---|---|---|
//! | [`dense`] | bi-encoder | HNSW |
//! | [`sparse`] | SPLADE | inverted index (MaxScore) |
//! | [`bm25`] | none (the text) | tantivy |

pub(crate) mod bm25;
pub(crate) mod dense;
#[cfg(test)]
pub(crate) mod exact;
pub(crate) mod sparse;

use std::path::Path;

use serde::{Deserialize, Serialize};

use sieve_encoders::SparseVector;
use sieve_index::{AllowSet, DocId, Hit, SearchParams};

use crate::error::Result;
use crate::models::Models;
use crate::store::{Put, Schema, Store};

/// A first-stage retriever.
///
/// ```no_run
/// # let collection = sieve_engine::Collection::open("docs.sieve")?;
/// use sieve_engine::Retriever;
///
/// let hits = collection
///     .search("what causes tides")
///     .retrievers(&[Retriever::Dense, Retriever::Bm25])
///     .weight(Retriever::Bm25, 0.5)
///     .run()?;
/// assert_eq!(Retriever::Bm25.name(), "bm25");
/// # Ok::<(), sieve_engine::EngineError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Retriever {
    /// Dense vectors (HNSW) from the bi-encoder.
    Dense,
    /// Sparse vectors (inverted index) from the SPLADE model.
    Sparse,
    /// BM25 full text.
    Bm25,
}

impl Retriever {
    /// Lower-case name: `dense`, `sparse`, `bm25`.
    pub fn name(self) -> &'static str {
        match self {
            Retriever::Dense => "dense",
            Retriever::Sparse => "sparse",
            Retriever::Bm25 => "bm25",
        }
    }

    /// The retriever with this [`name`](Self::name).
    ///
    /// ```
    /// use sieve_engine::Retriever;
    /// assert_eq!(Retriever::from_name("bm25"), Some(Retriever::Bm25));
    /// assert_eq!(Retriever::from_name("colbert"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Retriever> {
        [Retriever::Dense, Retriever::Sparse, Retriever::Bm25]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// Every retriever a collection can have, in the order a hybrid search runs and fuses them.
pub(crate) static KINDS: &[Kind] = &[
    dense::KIND,
    sparse::KIND,
    bm25::KIND,
    #[cfg(test)]
    exact::KIND,
];

/// A query as every retriever sees it: the text, and the encodings the selected retrievers
/// asked for (made once, outside the index lock: encoding is the slow part of a search).
#[derive(Debug, Default)]
pub(crate) struct Query {
    pub text: String,
    pub dense: Option<Vec<f32>>,
    pub sparse: Option<SparseVector>,
}

/// A retriever kind: the static half of a retriever.
pub(crate) struct Kind {
    /// Its name, as in [`Retriever::name`].
    pub name: &'static str,
    /// The file (or folder) of its index under the collection's `indexes/`, beside a marker
    /// `<file>.seq` holding the store sequence the saved index reflects.
    pub file: &'static str,
    /// Whether a collection with this schema has it.
    pub configured: fn(&Schema) -> bool,
    /// The index saved at `path`, when its files load and fit the schema (else it is rebuilt).
    pub load: fn(&Path, &Schema) -> Option<Box<dyn RetrieverIndex>>,
    /// A new index at `path` holding every stored document (whatever was at `path` goes).
    pub build: fn(&Path, &Schema, &Store) -> Result<Box<dyn RetrieverIndex>>,
    /// Adds what this retriever needs to the query, with the collection's models.
    pub encode: fn(&Models, &mut Query) -> Result<()>,
}

/// One retriever's index over the collection's documents.
///
/// Writes reach the store first; then [`apply`](Self::apply) / [`remove`](Self::remove) bring
/// the index along. An index that buffers writes ([`pending`](Self::pending)) makes them
/// searchable in [`commit`](Self::commit), which runs only once the store has flushed them,
/// so the index is never ahead of what survives a crash.
pub(crate) trait RetrieverIndex: Send + Sync {
    /// Documents indexed.
    fn len(&self) -> usize;
    /// Adds or replaces documents.
    fn apply(&mut self, puts: &[Put]) -> Result<()>;
    /// Removes documents; unknown ids are ignored.
    fn remove(&mut self, iids: &[DocId]) -> Result<()>;
    /// Re-applies the current state of `touched` documents from the store (idempotent).
    fn catch_up(&mut self, store: &Store, touched: &[DocId]) -> Result<()>;
    /// Whether applied writes wait for [`commit`](Self::commit) before searches see them.
    fn pending(&self) -> bool {
        false
    }
    /// Makes buffered writes searchable and durable.
    fn commit(&mut self) -> Result<()> {
        Ok(())
    }
    /// Writes the index to `path` (an index that commits its own files writes nothing).
    fn save(&self, path: &Path) -> Result<()>;
    /// The best `k` documents for `query`, only from `allow` when given.
    fn search(&self, query: &Query, k: usize, params: &SearchParams, allow: Option<&AllowSet>) -> Result<Vec<Hit>>;
}
