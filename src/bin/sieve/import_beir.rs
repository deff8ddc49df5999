//! `sieve import-beir`: a BEIR corpus (`corpus.jsonl`) into a collection, in batches, so an
//! interrupted import resumes and a changed corpus updates only what changed.

use std::path::PathBuf;

use serde::Serialize;
use sieve::engine::Document;
use sieve::engine::eval::read_jsonl;

use crate::output::{Output, WriteProgress, print_json, warn_stale};
use crate::{Error, Result, open_or_create_collection};

/// Documents upserted per batch: each batch is durable on its own.
const BATCH: usize = 512;

/// Import a BEIR corpus into a collection, in resumable batches.
///
/// Reads DIR/corpus.jsonl (or a .jsonl file given directly), one {"_id", "title"?, "text"} per
/// line, stored with id = _id and text = title + " " + text.
///
/// Documents already stored with the same text are skipped, so running it again resumes an
/// interrupted import and re-encodes only new or changed documents. Nothing is deleted. The
/// collection is created with the default models when --db does not exist.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  sieve import-beir ../shared/data/scifact --db scifact.sieve")]
pub struct Args {
    /// A BEIR dataset folder holding corpus.jsonl, or the .jsonl file itself.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The collection directory.
    #[arg(long, value_name = "DB")]
    db: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    added: usize,
    updated: usize,
    unchanged: usize,
    documents: usize,
}

pub fn run(args: Args, out: &Output) -> Result {
    let corpus = if args.dir.is_dir() {
        args.dir.join("corpus.jsonl")
    } else {
        args.dir.clone()
    };
    if !corpus.is_file() {
        return Err(Error::msg(format!(
            "{}: no such file (expected a BEIR folder with corpus.jsonl, or a .jsonl file)",
            corpus.display()
        )));
    }
    let records = read_jsonl(&corpus)?;
    if records.is_empty() {
        return Err(Error::msg(format!("{}: no documents", corpus.display())));
    }
    let collection = open_or_create_collection(&args.db, out)?;
    let mut report = Report {
        added: 0,
        updated: 0,
        unchanged: 0,
        documents: 0,
    };
    let mut todo = Vec::new();
    for (id, text) in records {
        match collection.get(&id)? {
            Some(doc) if doc.text == text => report.unchanged += 1,
            _ => todo.push(Document::new(id, text)),
        }
    }
    if report.unchanged > 0 {
        out.note(&format!("{} documents already stored unchanged", report.unchanged));
    }
    let config = collection.config();
    let stages = usize::from(config.dense.is_some()) + usize::from(config.sparse.is_some());
    let mut progress = WriteProgress::new(out, todo.len(), stages);
    let mut docs = todo.into_iter().peekable();
    let mut stale = Vec::new();
    while docs.peek().is_some() {
        let batch: Vec<Document> = docs.by_ref().take(BATCH).collect();
        let n = batch.len();
        let written = collection.upsert_with_progress(batch, &mut progress.callback(n))?;
        report.added += written.added;
        report.updated += written.replaced;
        stale = written.stale;
    }
    progress.finish();
    warn_stale(out, &stale);
    report.documents = collection.len();
    collection.close()?;
    if args.json {
        return print_json(&report);
    }
    outln!(
        "{} added, {} updated, {} unchanged; {} documents in {}",
        report.added,
        report.updated,
        report.unchanged,
        report.documents,
        args.db.display()
    )?;
    Ok(())
}
