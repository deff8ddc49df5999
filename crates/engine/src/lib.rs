//! # sieve-engine
//!
//! The database users hold: a [`Collection`] in a directory, embedded in their process. It
//! stores documents with metadata in **sled** (the source of truth), encodes them on the way
//! in with the configured models, keeps a dense (HNSW), a sparse (SPLADE) and a BM25 index,
//! and answers hybrid searches with score fusion and an optional cross-encoder rerank stage.
//!
//! | concept | module |
//! |---|---|
//! | the collection and its writes | [`collection`] |
//! | which models and indexes | [`config`] |
//! | documents | [`document`] |
//! | files on disk: scanning, text extraction, chunking, syncing a folder | [`documents`] |
//! | near-duplicate texts | [`duplicates`] |
//! | evaluation (nDCG, recall, MRR) | [`eval`] |
//! | the query builder and hits | [`search`] |
//! | metadata filters and their expression language | [`filter`] |
//! | fusing retrievers | [`fusion`] |
//! | the rerank stage | [`rerank`] |
//! //!
//! ```no_run
//! use sieve_engine::{Collection, CollectionConfig, Document, Filter};
//! use serde_json::json;
//!
//! let collection = Collection::create("notes.sieve", CollectionConfig::default())?;
//! collection.add(vec![
//!     Document::new("1", "Lamb chops with rosemary").with_metadata(json!({"kind": "recipe"})),
//!     Document::new("2", "Quarterly tax filing deadlines").with_metadata(json!({"kind": "finance"})),
//! ])?;
//! let hits = collection.search("what should I cook tonight").filter(Filter::eq("kind", "recipe")).run()?;
//! assert_eq!(hits[0].id, "1");
//! # Ok::<(), sieve_engine::EngineError>(())
//! ```
#![deny(missing_docs)]

pub mod collection;
pub mod config;
pub mod document;
pub mod documents;
pub mod duplicates;
mod error;
pub mod eval;
#[cfg(test)]
mod fault_injection;
mod files;
pub mod filter;
pub mod fusion;
mod indexes;
mod ingest;
mod metadata;
mod models;
mod reencode;
pub mod rerank;
mod retrievers;
pub mod search;
mod storage;
mod store;

pub use collection::{Collection, Info, Progress, StoredVectors, WriteReport};
pub use config::{CollectionConfig, DEFAULT_DENSE_MODEL, DEFAULT_RERANKER, DEFAULT_SPARSE_MODEL, Durability};
pub use document::Document;
pub use documents::{
    ChunkCounts, DuplicateFile, FileCounts, FileSet, SkipReason, Skipped, SourceFile, SyncEvent, SyncOptions,
    SyncReport,
};
pub use error::{EngineError, Result};
pub use filter::{Filter, JsonFilterError, ParseFilterError};
pub use fusion::{Fusion, fuse};
pub use reencode::ReencodeReport;
pub use rerank::{Rerank, Reranked};
pub use search::{Retriever, Scored, Search, SearchHit};
