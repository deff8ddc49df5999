//! The one error type of the engine.

use std::path::PathBuf;

/// Everything a [`Collection`](crate::Collection) operation can fail with.
///
/// ```
/// use sieve_engine::{Collection, EngineError};
///
/// match Collection::open("no-such-collection.sieve") {
///     Ok(collection) => println!("{} documents", collection.len()),
///     Err(EngineError::NotACollection { path, reason }) => println!("{}: {reason}", path.display()),
///     Err(EngineError::Locked { .. }) => println!("another process has it open"),
///     Err(e) => return Err(e),
/// }
/// # Ok::<(), EngineError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Loading or running a model failed.
    #[error(transparent)]
    Encoder(#[from] sieve_encoders::EncoderError),
    /// An index refused an operation or its files are damaged.
    #[error(transparent)]
    Index(#[from] sieve_index::IndexError),
    /// The storage engine (sled) failed.
    #[error("storage error in {path}: {message}")]
    Storage {
        /// The collection directory.
        path: PathBuf,
        /// What sled reported.
        message: String,
    },
    /// File-system error outside the store.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another `Collection` in this one) has the collection open.
    #[error("collection {path} is locked: another process has it open")]
    Locked {
        /// The collection directory.
        path: PathBuf,
    },
    /// The directory exists but is not a sieve collection, or its contents are damaged.
    #[error("{path} is not a readable sieve collection: {reason}")]
    NotACollection {
        /// The directory.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// `create` on a directory that already holds a collection.
    #[error("{path} already holds a collection; use Collection::open")]
    AlreadyExists {
        /// The directory.
        path: PathBuf,
    },
    /// The collection was written by a newer (or unknown) schema version.
    #[error("collection {path} has schema version {found}; this build reads version {supported}")]
    SchemaVersion {
        /// The directory.
        path: PathBuf,
        /// Version found.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// A model's output size differs from the one the collection was built with.
    #[error("model {model} produces {found}-dimensional vectors but the collection stores {expected}")]
    DimensionChanged {
        /// The model id.
        model: String,
        /// Dimension stored in the collection.
        expected: usize,
        /// Dimension of the model now loaded.
        found: usize,
    },
    /// A document carries a dense vector of another width than the collection's.
    #[error("document {id:?}: its dense vector has {got} dimensions, the collection {expected}")]
    DimensionMismatch {
        /// The document's id.
        id: String,
        /// The collection's dense width.
        expected: usize,
        /// The vector's width.
        got: usize,
    },
    /// `add` with an id that is already stored (use `upsert` to replace).
    #[error("document id {id:?} already exists (use upsert to replace it)")]
    DuplicateId {
        /// The id.
        id: String,
    },
    /// The same id appears twice in one call.
    #[error("document id {id:?} appears more than once in the same call")]
    RepeatedId {
        /// The id.
        id: String,
    },
    /// A model produced infinity or NaN for a document; nothing of the call was written.
    #[error("the {model} model produced a non-finite value for document {id:?}; nothing was written")]
    NonFinite {
        /// `dense` or `sparse`.
        model: &'static str,
        /// The document's id.
        id: String,
    },
    /// An earlier write panicked; the collection takes no more writes until it is reopened.
    #[error("a write to {path} panicked earlier; reopen the collection to write again (what is stored is intact)")]
    Poisoned {
        /// The collection directory.
        path: PathBuf,
    },
    /// A document, query or option is unusable.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A search asked for a retriever the collection was not configured with.
    #[error("the collection has no {0} retriever configured")]
    RetrieverMissing(&'static str),
    /// A glob given to [`SyncOptions`](crate::SyncOptions) is malformed.
    #[error("invalid glob pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A folder or file given to a sync does not exist or cannot be read; nothing was written.
    #[error("cannot index {path}: {source}")]
    CannotIndex {
        /// The path as given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file given to a sync has no file name to store it under (`..`, or not UTF-8).
    #[error("{path}: not a file name")]
    NotAFileName {
        /// The path as given.
        path: PathBuf,
    },
    /// Two different files given to one sync would be stored under the same name; sync them
    /// into separate collections.
    #[error("{first} and {second} would both be indexed as {name:?}: index them into separate collections")]
    NameClash {
        /// The file found first.
        first: PathBuf,
        /// The other one.
        second: PathBuf,
        /// The name both have.
        name: String,
    },
    /// A sync found no file it reads under its paths; nothing was written.
    #[error(
        "no indexable files ({}){} under {}: nothing indexed",
        crate::documents::EXTENSIONS,
        glob.as_ref().map(|g| format!(" matching {g:?}")).unwrap_or_default(),
        paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoIndexableFiles {
        /// The paths given.
        paths: Vec<PathBuf>,
        /// The glob files had to match.
        glob: Option<String>,
    },
    /// The tokenizer failed on a file's text; what the sync wrote before stays.
    #[error("{path}: cannot tokenize: {reason}")]
    Tokenize {
        /// The file.
        path: PathBuf,
        /// The tokenizer's message.
        reason: String,
    },
}

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn not_a_collection(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        EngineError::NotACollection {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
