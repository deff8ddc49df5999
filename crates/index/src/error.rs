//! The one error type of this crate.

use std::path::PathBuf;

/// Everything an index operation can fail with.
///
/// ```
/// use sieve_index::{DenseIndex, FlatIndex, IndexError, Metric};
///
/// let mut index = FlatIndex::new(3, Metric::Cosine);
/// match index.insert(&[(1, &[1.0, 0.0][..])]) {
///     Err(IndexError::DimensionMismatch { expected, found }) => assert_eq!((expected, found), (3, 2)),
///     other => panic!("expected a dimension mismatch, got {other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// A vector's length is not the index's dimension.
    #[error("dimension mismatch: the index holds {expected}-dimensional vectors, got {found}")]
    DimensionMismatch {
        /// The index's dimension.
        expected: usize,
        /// The length that was passed.
        found: usize,
    },
    /// A vector holds NaN or an infinity.
    #[error("{what} has a non-finite component ({value}) at position {position}")]
    NonFinite {
        /// Which vector: `"document 17"` or `"query"`.
        what: String,
        /// Position of the first bad component.
        position: usize,
        /// The bad value.
        value: f32,
    },
    /// A parameter is out of its allowed range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file is truncated, fails its checksum or is not an index file.
    #[error("corrupt or foreign index file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An index file was written by a format version this build cannot read.
    #[error("index file {path} has format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version found in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// No index was saved at this path.
    #[error("no index at {path}")]
    NotFound {
        /// Where one was expected.
        path: PathBuf,
    },
    /// The full-text engine (tantivy) failed.
    #[error("full-text index error: {0}")]
    Text(String),
}

/// Result alias for this crate.
pub type Result<T, E = IndexError> = std::result::Result<T, E>;

impl IndexError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IndexError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        IndexError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
