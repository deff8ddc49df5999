//! # sieve-index
//!
//! The three retrievers a sieve collection searches, each behind a small trait and knowing
//! nothing of models or storage: it takes internal ids ([`DocId`]) and vectors or text, and
//! answers top-k. The engine's store stays the source of truth; every index here can be
//! rebuilt from it.
//!
//! | role | entry point | what it is |
//! |---|---|---|
//! | dense vectors | trait [`DenseIndex`] | [`HnswIndex`] (approximate, hnsw_rs), [`FlatIndex`] (exact) |
//! | sparse (SPLADE) vectors | [`SparseIndex`] | exact inverted index with block-max dynamic pruning |
//! | full text | [`TextIndex`] | BM25 on tantivy |
//!
//! Every `search` takes an optional [`AllowSet`] that is applied inside the search, so a
//! filtered search still returns `k` hits when `k` allowed documents exist.
//!
//! ```
//! use sieve_index::{DenseIndex, FlatIndex, Metric, SearchParams};
//!
//! let mut index = FlatIndex::new(3, Metric::Cosine);
//! index.insert(&[(1, &[1.0, 0.0, 0.0][..]), (2, &[0.0, 1.0, 0.0][..])])?;
//! let hits = index.search(&[0.9, 0.1, 0.0], 1, &SearchParams::default(), None)?;
//! assert_eq!(hits[0].id, 1);
//! # Ok::<(), sieve_index::IndexError>(())
//! ```
#![deny(missing_docs)]

mod dense;
mod error;
mod filter;
mod flat;
mod hit;
mod hnsw;
mod metric;
mod persist;
pub mod sparse;
pub mod text;
mod vectors;

pub use dense::{DenseIndex, SearchParams};
pub use error::{IndexError, Result};
pub use filter::AllowSet;
pub use flat::FlatIndex;
pub use hit::{DocId, Hit, TopK};
pub use hnsw::{HnswIndex, HnswParams};
pub use metric::Metric;
pub use sparse::SparseIndex;
pub use text::{TextIndex, TextIndexConfig};
