//! Rust errors as Python exceptions: `ValueError` for bad arguments, `FileNotFoundError` for
//! missing models and collections, [`SieveError`] for the rest, always with the Rust message.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyFileExistsError, PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use sieve_encoders::EncoderError;
use sieve_engine::EngineError;

create_exception!(
    sieve,
    SieveError,
    PyException,
    "Base class of sieve's own errors (a damaged or locked collection, a backend failure, ...).\n\n\
     Bad arguments raise ValueError or TypeError and missing models or collections FileNotFoundError \
     (FileExistsError for creating over a collection) instead, as Python's conventions have it."
);

/// The Python exception for an encoder error.
pub fn encoder(error: EncoderError) -> PyErr {
    let message = error.to_string();
    match error {
        EncoderError::ModelFileMissing { .. } | EncoderError::Hub { .. } => PyFileNotFoundError::new_err(message),
        EncoderError::InvalidArgument(_)
        | EncoderError::DimensionMismatch { .. }
        | EncoderError::NotEnoughCalibration { .. }
        | EncoderError::DeviceUnavailable { .. } => PyValueError::new_err(message),
        _ => SieveError::new_err(message),
    }
}

/// The Python exception for an engine error.
pub fn engine(error: EngineError) -> PyErr {
    let message = error.to_string();
    match error {
        EngineError::Encoder(inner) => encoder(inner),
        EngineError::InvalidInput(_)
        | EngineError::DuplicateId { .. }
        | EngineError::RepeatedId { .. }
        | EngineError::DimensionMismatch { .. }
        | EngineError::RetrieverMissing(_)
        | EngineError::InvalidPattern { .. } => PyValueError::new_err(message),
        EngineError::NotAFileName { .. } | EngineError::NameClash { .. } | EngineError::NoIndexableFiles { .. } => {
            PyValueError::new_err(message)
        }
        EngineError::CannotIndex { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(message)
        }
        EngineError::AlreadyExists { .. } => PyFileExistsError::new_err(message),
        _ => SieveError::new_err(message),
    }
}

/// `ValueError(message)`.
pub fn value(message: impl Into<String>) -> PyErr {
    PyValueError::new_err(message.into())
}
