//! # sieve-engine
//!
//! The persistent `Collection`: sled store, hybrid retrieval, fusion and rerank. Not yet implemented: this crate is a placeholder in the workspace layout.
#![deny(missing_docs)]
