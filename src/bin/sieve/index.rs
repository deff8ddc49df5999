//! `sieve index`: keeps a collection in step with folders of documents through
//! [`Collection::sync_files`](sieve::engine::Collection::sync_files): the command parses its
//! arguments, scans before it opens (or creates) the collection, draws the progress bar and
//! prints the report.

use std::path::PathBuf;

use serde::Serialize;
use sieve::engine::{
    ChunkCounts, DuplicateFile, EngineError, FileCounts, SkipReason, Skipped, SyncEvent, SyncOptions, SyncReport,
};

use crate::output::{Output, WriteProgress, print_json, warn_stale};
use crate::{Error, Result, open_or_create_collection};

/// Index folders of documents into a collection, re-encoding only what changed.
///
/// Reads .txt, .md / .markdown, .rst and .html / .htm files (hidden files and folders are
/// skipped; PDFs are not read yet: convert them to text first). Each file is cut into chunks
/// that fit the dense model (paragraphs and headings packed up to its max_seq_length tokens,
/// consecutive chunks overlapping by 1/8); each chunk is a document with id
/// `<relative path>#<chunk number>` and metadata path, chunk, title, byte_start, byte_end
/// (the chunk's byte range in the file, or in the text extracted from HTML) and hash (SHA-256
/// of the file).
///
/// Paths are relative to the folder given (a file given directly: its name). The collection
/// mirrors the PATHs of the last run: files indexed before that are no longer found (or no
/// longer match --glob) are removed. A file that cannot be read or is not UTF-8 is skipped
/// with a warning and what was indexed from it before is kept. No indexable file at all is
/// an error (exit status 1) and leaves the collection untouched. The collection is created
/// with the default models when --db does not exist.
///
/// Files that mostly repeat other files' text (mdBook's print.html, single-page builds) are
/// reported with a warning: their chunks duplicate the others' (searches fold such hits into
/// one); --exclude leaves them out.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  sieve index notes/ --db notes.sieve --glob '*.md'")]
pub struct Args {
    /// Folders (walked recursively) or files to index.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The collection directory.
    #[arg(long, value_name = "DIR")]
    db: PathBuf,
    /// Only files whose relative path matches this glob (`*` also crosses `/`), e.g. `*.md`.
    #[arg(long, value_name = "PATTERN")]
    glob: Option<String>,
    /// Leave out files whose relative path matches this glob (repeatable), e.g. `print.html`;
    /// what was indexed from them before is removed.
    #[arg(long, value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The `--json` report.
#[derive(Serialize)]
struct Report<'a> {
    files: &'a FileCounts,
    chunks: &'a ChunkCounts,
    documents: usize,
    duplicate_files: &'a [DuplicateFile],
}

pub fn run(args: Args, out: &Output) -> Result {
    let mut options = SyncOptions::new(&args.paths);
    if let Some(g) = &args.glob {
        options = options.glob(g).map_err(|e| pattern_error("--glob", e))?;
    }
    for g in &args.exclude {
        options = options.exclude(g).map_err(|e| pattern_error("--exclude", e))?;
    }
    // Bad paths fail here, before a collection is created.
    let files = options.scan(&mut |event| {
        if let SyncEvent::Skipped(skipped) = event {
            warn_skipped(out, skipped);
        }
    })?;
    let collection = open_or_create_collection(&args.db, out)?;
    let config = collection.config();
    let stages = usize::from(config.dense.is_some()) + usize::from(config.sparse.is_some());
    let mut progress = WriteProgress::new(out, 0, stages);
    let report = collection.sync_files(files, &mut |event| match event {
        SyncEvent::Skipped(skipped) => warn_skipped(out, skipped),
        SyncEvent::Batch { documents } => {
            progress.extend(documents);
            progress.start(documents);
        }
        SyncEvent::Progress(p) => progress.update(p),
        _ => {}
    })?;
    progress.finish();
    warn_stale(out, &report.stale);
    warn_duplicates(out, &report);
    collection.close()?;
    if args.json {
        return print_json(&Report {
            files: &report.files,
            chunks: &report.chunks,
            documents: report.documents,
            duplicate_files: &report.duplicate_files,
        });
    }
    let f = &report.files;
    outln!(
        "files: {} new, {} changed, {} unchanged, {} removed, {} skipped",
        f.new,
        f.changed,
        f.unchanged,
        f.removed,
        f.skipped
    )?;
    outln!(
        "chunks: {} written, {} deleted; {} documents in {}",
        report.chunks.written,
        report.chunks.deleted,
        report.documents,
        args.db.display()
    )?;
    Ok(())
}

/// `invalid --glob "[": ...`: the option named as the user typed it.
fn pattern_error(option: &str, e: EngineError) -> Error {
    match e {
        EngineError::InvalidPattern { pattern, reason } => {
            Error::msg(format!("invalid {option} {pattern:?}: {reason}"))
        }
        e => e.into(),
    }
}

/// One line per file or folder left out: a warning, or a note for a file without text.
fn warn_skipped(out: &Output, skipped: &Skipped) {
    match &skipped.reason {
        SkipReason::UnreadableFolder { error, kept: true } => {
            out.warn(&format!("cannot read {error}; keeping what was indexed from it"))
        }
        SkipReason::NoText => out.note(&format!("skipping {skipped}")),
        _ => out.warn(&format!("skipping {skipped}")),
    }
}

/// Files that repeat others' text, with the `--exclude` that leaves each out.
fn warn_duplicates(out: &Output, report: &SyncReport) {
    for d in &report.duplicate_files {
        let mut named = d.repeats.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        if d.repeats.len() > 5 {
            named.push_str(&format!(" and {} more", d.repeats.len() - 5));
        }
        out.warn(&format!(
            "{} repeats the text of {} ({:.0}% of it is in other files): its chunks duplicate theirs; leave it out with --exclude '{}'",
            d.path,
            named,
            100.0 * d.covered,
            d.exclude_pattern()
        ));
    }
}
