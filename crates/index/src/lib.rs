//! # sieve-index
//!
//! The retrievers a collection searches: HNSW for dense vectors, an inverted index for SPLADE vectors, BM25 full text. Not yet implemented: this crate is a placeholder in the workspace layout.
#![deny(missing_docs)]
