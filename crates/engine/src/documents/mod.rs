//! Documents on disk: keeping a collection in step with folders of text, Markdown,
//! reStructuredText and HTML files ([`Collection::sync_folder`](crate::Collection::sync_folder)),
//! and the steps it is made of, for callers who feed a collection themselves: which files
//! ([`SyncOptions`]), their text ([`extract`]) and chunks the dense model reads whole
//! ([`Chunker`]).
//!
//! ```no_run
//! use sieve_engine::{Collection, CollectionConfig, SyncEvent, SyncOptions};
//!
//! let collection = Collection::create("notes.sieve", CollectionConfig::default())?;
//! let options = SyncOptions::new(["notes/"]).glob("*.md")?;
//! let report = collection.sync_folder(&options, &mut |event| {
//!     if let SyncEvent::Skipped(skipped) = event {
//!         eprintln!("skipping {skipped}");
//!     }
//! })?;
//! println!("{} new, {} changed, {} removed", report.files.new, report.files.changed, report.files.removed);
//! for page in &report.duplicate_files {
//!     println!("{} repeats {:?}: exclude it with {:?}", page.path, page.repeats, page.exclude_pattern());
//! }
//! # Ok::<(), sieve_engine::EngineError>(())
//! ```

mod chunk;
mod extract;
mod repeats;
mod sync;
mod walk;

pub use chunk::{Chunker, FALLBACK_WORDS, SECTION_BYTES, Section, Tokenize, sections};
pub use extract::{Block, EXTENSIONS, Extracted, Format, extract};
pub use repeats::DuplicateFile;
pub use sync::{ChunkCounts, FileCounts, SyncEvent, SyncReport};
pub use walk::{FileSet, SkipReason, Skipped, SourceFile, SyncOptions};
