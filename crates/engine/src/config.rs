//! [`CollectionConfig`]: which models and indexes a collection uses, fixed at creation and
//! read back from the store on open.

use serde::{Deserialize, Serialize};
use sieve_index::{HnswParams, TextIndexConfig};

/// The default dense model.
pub const DEFAULT_DENSE_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// The default sparse (SPLADE) model.
pub const DEFAULT_SPARSE_MODEL: &str = "rasyosef/splade-tiny";
/// The default cross-encoder for the rerank stage.
pub const DEFAULT_RERANKER: &str = "sieve/scifact-minilm-l6-reranker";

/// What a collection encodes and indexes. Models are Hugging Face ids (resolved through the
/// local hub cache, downloading when online) or local folders.
///
/// ```
/// use sieve_engine::CollectionConfig;
/// // Dense + BM25 only, no sparse model, no reranker:
/// let config = CollectionConfig { sparse: None, reranker: None, ..CollectionConfig::default() };
/// assert!(config.text);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionConfig {
    /// Bi-encoder for dense retrieval (`None`: no dense index). Each model is a Hugging Face
    /// hub id or a local folder; a collection stores a folder as its absolute path.
    pub dense: Option<String>,
    /// SPLADE model for sparse retrieval (`None`: no sparse index).
    pub sparse: Option<String>,
    /// Keep a BM25 full-text index.
    pub text: bool,
    /// Cross-encoder for the rerank stage (`None`: searches cannot rerank).
    pub reranker: Option<String>,
    /// HNSW parameters of the dense index.
    pub hnsw: HnswParams,
    /// Analyzer of the BM25 index.
    pub text_index: TextIndexConfig,
    /// Texts per encoder batch during ingest.
    pub batch_size: usize,
    /// When writes are acknowledged.
    pub durability: Durability,
    /// Keep only the first this many dimensions of the dense embeddings (Matryoshka models,
    /// as `SentenceTransformer(..., truncate_dim=...)`), scaled back to unit length; `None`
    /// keeps them all. A smaller index and faster search for a little quality.
    pub truncate_dim: Option<usize>,
    /// Test builds only: an exact-scan dense retriever beside HNSW (`retrievers::exact`).
    #[cfg(test)]
    #[serde(default)]
    pub exact_scan: bool,
}

impl Default for CollectionConfig {
    fn default() -> Self {
        CollectionConfig {
            dense: Some(DEFAULT_DENSE_MODEL.to_string()),
            sparse: Some(DEFAULT_SPARSE_MODEL.to_string()),
            text: true,
            reranker: Some(DEFAULT_RERANKER.to_string()),
            hnsw: HnswParams::default(),
            text_index: TextIndexConfig::default(),
            batch_size: 32,
            durability: Durability::default(),
            truncate_dim: None,
            #[cfg(test)]
            exact_scan: false,
        }
    }
}

/// When `add` / `upsert` / `delete` return.
///
/// ```
/// use sieve_engine::{CollectionConfig, Durability};
///
/// // Many small writes: don't wait for a disk flush on each (`checkpoint` flushes too).
/// let config = CollectionConfig { durability: Durability::Buffered, ..CollectionConfig::default() };
/// assert_ne!(config.durability, Durability::default());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Durability {
    /// Return once the write is flushed to disk: it survives a crash or power loss.
    #[default]
    Flush,
    /// Return once the write is in sled's log buffer; sled flushes it within about half a
    /// second. Faster for many small writes; a crash (of the process or the machine) can lose
    /// the writes of that last half second, never leave one half-applied.
    Buffered,
}
