//! The one error type of the encoders crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running an encoder.
///
/// Each variant says what was wrong and, where it helps, what to do about it.
///
/// ```
/// use sieve_encoders::{EncoderError, SentenceTransformer};
///
/// match SentenceTransformer::load("no/such/model/folder") {
///     Ok(model) => println!("{} dimensions", model.embedding_dim()),
///     Err(EncoderError::ModelFileMissing { path }) => println!("no model at {}", path.display()),
///     Err(e) => return Err(e),
/// }
/// # Ok::<(), EncoderError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncoderError {
    /// A file the model needs is not in its folder.
    #[error("model file missing: {path}")]
    ModelFileMissing {
        /// The file that was looked for.
        path: PathBuf,
    },

    /// A model id could not be resolved through the Hugging Face hub cache or a download.
    #[error("cannot fetch `{file}` of model `{model_id}`: {reason}")]
    Hub {
        /// The hub id, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
        model_id: String,
        /// The file within the repository.
        file: String,
        /// Why it failed (offline and not cached, network error, ...).
        reason: String,
    },

    /// A file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A JSON configuration file is malformed or has a field of the wrong type.
    #[error("invalid config file {path}: {reason}")]
    InvalidConfig {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },

    /// `config.json` names an architecture this crate cannot run.
    #[error("unsupported architecture `{found}` (supported: {})", supported.join(", "))]
    UnsupportedArchitecture {
        /// What `config.json` says.
        found: String,
        /// What sieve can run.
        supported: Vec<&'static str>,
    },

    /// The weights file is not valid safetensors.
    #[error("invalid safetensors file {path}: {reason}")]
    InvalidWeights {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },

    /// A tensor the model needs is absent from the weights file.
    #[error("tensor `{key}` missing from {path} (looked for: {})", tried.join(", "))]
    MissingTensor {
        /// The canonical (Hugging Face) key.
        key: String,
        /// The weights file.
        path: PathBuf,
        /// Every checkpoint key that would have been accepted.
        tried: Vec<String>,
    },

    /// A tensor has another shape than `config.json` implies.
    #[error("tensor `{key}` has shape {found:?}, expected {expected:?} from config.json")]
    ShapeMismatch {
        /// The checkpoint key.
        key: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },

    /// The tokenizer failed to load or to encode.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),

    /// A device (backend) was requested that this build or machine cannot provide.
    #[error("device `{device}` unavailable: {reason}")]
    DeviceUnavailable {
        /// The requested device.
        device: String,
        /// Why, e.g. the cargo feature that enables it.
        reason: String,
    },

    /// A caller-supplied argument is invalid (unknown prompt name, mismatched shapes, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Two vectors or matrices that must have the same width do not (quantization ranges and
    /// embeddings, two quantized rows).
    #[error("dimension mismatch: expected {expected}, got {got}")]
    DimensionMismatch {
        /// The width required.
        expected: usize,
        /// The width given.
        got: usize,
    },

    /// `int8` / `uint8` quantization ranges cannot come from so few embeddings: pass
    /// calibration embeddings (a representative sample, e.g. the corpus) or saved `Int8Ranges`.
    #[error(
        "int8/uint8 quantization ranges need at least {needed} calibration embedding(s), got {rows}: \
         pass calibration embeddings (e.g. a sample of the corpus) or saved Int8Ranges"
    )]
    NotEnoughCalibration {
        /// Embeddings the ranges would have been computed from.
        rows: usize,
        /// The least that works: 1 for explicit calibration, 2 for the embeddings themselves.
        needed: usize,
    },

    /// The backend failed while computing or reading back a tensor.
    #[error("backend error: {0}")]
    Backend(String),
}

/// Result alias for this crate.
pub type Result<T, E = EncoderError> = std::result::Result<T, E>;

impl EncoderError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            EncoderError::ModelFileMissing { path }
        } else {
            EncoderError::Io { path, source }
        }
    }
}
