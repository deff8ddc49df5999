//! What the training tests share: the tiny fixtures in `../shared/fixtures/`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `../shared/fixtures`, or `None` (with the reason printed) when the shared folder is not
/// beside the repository.
pub fn fixtures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: {} not found (the shared fixtures sit beside the repository)",
            dir.display()
        );
        None
    }
}

/// The fixture `name` (see [`fixtures`]).
pub fn fixture(name: &str) -> Option<PathBuf> {
    fixtures().map(|dir| dir.join(name))
}
