//! The `sieve` Python package's native module, `sieve._sieve`: sentence-transformers' three
//! model classes, its `util` helpers and the `Collection` database, as PyO3 classes over the
//! Rust crates. Built by maturin (`crates/python/pyproject.toml`), which turns on the
//! `extension` feature; without it this crate is empty, so `cargo test --workspace` needs no
//! Python.
#![cfg(feature = "extension")]

mod arrays;
mod collection;
mod cross_encoder;
mod device;
mod errors;
mod roles;
mod sentence_transformer;
mod sparse_encoder;
mod util;

use pyo3::prelude::*;

#[pymodule]
fn _sieve(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("SieveError", m.py().get_type::<errors::SieveError>())?;
    m.add_class::<sentence_transformer::SentenceTransformer>()?;
    m.add_class::<cross_encoder::CrossEncoder>()?;
    m.add_class::<sparse_encoder::SparseEncoder>()?;
    m.add_class::<sparse_encoder::SparseEmbeddings>()?;
    m.add_class::<collection::Collection>()?;
    m.add_function(wrap_pyfunction!(util::cos_sim, m)?)?;
    m.add_function(wrap_pyfunction!(util::dot_score, m)?)?;
    m.add_function(wrap_pyfunction!(util::semantic_search, m)?)?;
    m.add_function(wrap_pyfunction!(util::quantize_embeddings, m)?)?;
    m.add_function(wrap_pyfunction!(util::paraphrase_mining, m)?)?;
    m.add_function(wrap_pyfunction!(util::paraphrase_mining_embeddings, m)?)?;
    m.add_function(wrap_pyfunction!(util::community_detection, m)?)?;
    m.add_function(wrap_pyfunction!(sentence_transformer::_encode_seconds, m)?)?;
    Ok(())
}
