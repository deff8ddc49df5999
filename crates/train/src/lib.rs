//! Training data for fine-tuning sieve's three model kinds (issue 17), the part that needs no
//! gradients: examples read from files ([`data`]) and hard negatives mined from a
//! [`Collection`](sieve_engine::Collection) ([`mining`]), named as in sentence-transformers.
//!
//! ```no_run
//! use sieve_engine::Collection;
//! use sieve_train::data::beir_pairs;
//! use sieve_train::mining::{MiningOptions, mine_hard_negatives};
//!
//! let pairs = beir_pairs("scifact".as_ref(), "scifact/qrels/train.tsv".as_ref(), Some("scifact/qrels/dev.tsv".as_ref()))?;
//! let collection = Collection::open("scifact.sieve")?;
//! let mined = mine_hard_negatives(&collection, &pairs.queries(), &MiningOptions::default())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod data;
pub mod evaluation;
pub mod losses;
pub mod mining;
pub mod optim;
pub mod trainer;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A line of a data file is malformed.
    #[error("{path}:{line}: {message}")]
    Data {
        /// The file.
        path: std::path::PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// An option is unusable.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// An optimizer state file is unreadable or belongs to another model.
    #[error("optimizer state {path}: {reason}")]
    OptimizerState {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading a file, or searching the collection, failed.
    #[error(transparent)]
    Engine(#[from] sieve_engine::EngineError),
    /// Loading, running or saving a model failed.
    #[error(transparent)]
    Encoder(#[from] sieve_encoders::EncoderError),
}

/// Result alias for this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
