//! What the training tests share: the tiny fixtures in `../shared/fixtures/`, and ten short
//! documents on two topics (tides and the moon, everyday chores).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sieve_engine::{Collection, CollectionConfig, Document};

#[path = "../../../../tests/common/scratch.rs"]
mod scratch;
#[allow(unused_imports)] // not every test file uses it
pub use scratch::ScratchDir;

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

/// Ten short documents (id, text): five on tides and the moon, five unrelated.
pub const DOCS: [(&str, &str); 10] = [
    (
        "tides",
        "Tides rise and fall because the moon's gravity pulls on the oceans.",
    ),
    ("spring-tides", "Spring tides happen when the sun and the moon line up."),
    ("moon", "The moon orbits the earth once every twenty-seven days."),
    ("waves", "Wind blowing over the sea raises waves on its surface."),
    ("ocean", "The Pacific is the largest and deepest of the oceans."),
    ("tax", "Quarterly tax filing deadlines for small businesses."),
    ("soup", "A tomato soup recipe with basil, ready in half an hour."),
    ("lamb", "Lamb chops roasted with rosemary and garlic."),
    ("guitar", "How to tune a guitar by ear."),
    ("mars", "Mars has two small moons, Phobos and Deimos."),
];

/// A new collection in `dir` (emptied first) with `config`, holding [`DOCS`].
pub fn docs_collection(dir: &Path, config: CollectionConfig) -> sieve_engine::Result<Collection> {
    let _ = std::fs::remove_dir_all(dir);
    let collection = Collection::create(dir, config)?;
    collection.add(DOCS.iter().map(|(id, text)| Document::new(*id, *text)).collect())?;
    Ok(collection)
}
