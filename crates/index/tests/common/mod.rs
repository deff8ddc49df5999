//! Helpers shared by the index crate's integration tests and benches: where `../shared` is,
//! ann-benchmarks' random-xs-20 vectors and SciFact's texts and judgments.
#![allow(dead_code)]

use std::path::PathBuf;

pub mod ann;
pub mod scifact;
#[path = "../../../../tests/common/scratch.rs"]
mod scratch;
#[allow(unused_imports)] // not every test file uses it
pub use scratch::ScratchDir;

/// `../shared` beside the repository (override with `SIEVE_SHARED`).
pub fn shared() -> PathBuf {
    if let Some(dir) = std::env::var_os("SIEVE_SHARED") {
        return PathBuf::from(dir);
    }
    // This crate lives in `<repository>/crates/index`.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("..")
        .join("shared")
}
