//! # sieve-encoders
//!
//! The three model kinds of Python's *sentence-transformers*, run natively on
//! [burn](https://burn.dev) and giving the same numbers:
//!
//! - [`SentenceTransformer`] — text → dense embedding, [`similarity`](SentenceTransformer::similarity).
//! - [`CrossEncoder`] — (query, text) → score, [`rank`](CrossEncoder::rank).
//! - [`SparseEncoder`] — text → SPLADE sparse vector over the vocabulary.
//! - [`quantization`] — `quantize_embeddings` to int8 / uint8 / binary, Hamming and int8 dot.
//! - [`util`] — `semantic_search`, `paraphrase_mining` and `community_detection` over embeddings.
//!
//! Models load by hub id through the local Hugging Face cache (`HF_HOME`, `HF_HUB_CACHE`,
//! `HF_HUB_OFFLINE` are honoured) or from a folder, reading the sentence-transformers files
//! (`modules.json`, pooling, prompts, similarity function) rather than assuming them.
//!
//! ```no_run
//! use sieve_encoders::SentenceTransformer;
//!
//! let model = SentenceTransformer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2")?;
//! let sentences = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."];
//! let embeddings = model.encode(&sentences)?;
//! let similarities = model.similarity(&embeddings, &embeddings)?;
//! println!("{:.4}", similarities[0][1]); // 0.6660
//! # Ok::<(), sieve_encoders::EncoderError>(())
//! ```
#![deny(missing_docs)]

pub mod allocator;
mod batching;
mod checkpoint;
mod config;
mod cross_encoder;
mod device;
mod embeddings;
mod error;
pub mod hub;
mod kernels;
pub mod models;
mod pooling;
pub mod quantization;
mod sentence_transformer;
mod similarity;
mod sparse_encoder;
mod tokenizer;
#[cfg(feature = "train")]
pub mod training;
mod transformer;
pub mod util;

pub use config::PoolingMode;
pub use cross_encoder::{CrossEncoder, PredictOptions, RankHit, RankOptions, ScoreActivation};
pub use device::{Device, Dtype, LoadOptions};
pub use embeddings::{Embeddings, SparseEmbeddings, SparseVector, Sparsity};
pub use error::{EncoderError, Result};
pub use hub::ModelFiles;
pub use quantization::{Precision, QuantizedEmbeddings};
pub use sentence_transformer::{EncodeOptions, SentenceTransformer};
pub use similarity::SimilarityFn;
pub use sparse_encoder::{SparseEncodeOptions, SparseEncoder};
pub use tokenizer::{TokenBatch, Tokenizer};
