//! # sieve
//!
//! An embedded semantic search database: sentence-transformers' models run natively in Rust
//! (on [burn](https://burn.dev)), dense / sparse / BM25 indexes, and a persistent collection —
//! the way SQLite brings SQL into an app.
//!
//! This facade re-exports the public API of the workspace crates: [`encoders`] (models),
//! [`index`] (retrievers) and [`engine`] (the collection), with the types most programs use
//! at the root ([`Collection`], [`SentenceTransformer`], [`CrossEncoder`], [`SparseEncoder`], ...)
//! and sentence-transformers' [`util`] (`semantic_search`, `paraphrase_mining`,
//! `community_detection`).
//!
//! ```no_run
//! use sieve::SentenceTransformer;
//!
//! let model = SentenceTransformer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2")?;
//! let embeddings = model.encode(&["The weather is lovely today.", "It's so sunny outside!"])?;
//! let similarities = model.similarity(&embeddings, &embeddings)?;
//! assert!(similarities[0][1] > 0.6);
//! # Ok::<(), sieve::EncoderError>(())
//! ```
#![deny(missing_docs)]

pub use sieve_encoders as encoders;
pub use sieve_encoders::util;
pub use sieve_encoders::{
    CrossEncoder, Device, Dtype, Embeddings, EncodeOptions, EncoderError, LoadOptions, ModelFiles, Precision,
    PredictOptions, QuantizedEmbeddings, RankHit, RankOptions, ScoreActivation, SentenceTransformer, SimilarityFn,
    SparseEmbeddings, SparseEncodeOptions, SparseEncoder, SparseVector, Sparsity,
};
pub use sieve_engine as engine;
pub use sieve_engine::{
    Collection, CollectionConfig, Document, Durability, EngineError, Filter, Fusion, Info, ParseFilterError, Progress,
    ReencodeReport, Rerank, Retriever, Scored, Search, SearchHit, StoredVectors, SyncEvent, SyncOptions, SyncReport,
    WriteReport,
};
pub use sieve_index as index;
#[cfg(feature = "train")]
pub use sieve_train as train;
