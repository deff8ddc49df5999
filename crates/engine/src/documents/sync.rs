//! Keeping a collection in step with files on disk. Files are hashed and compared with the hash
//! stored in their chunks' metadata; only new and changed files are chunked and encoded, and
//! the chunks of deleted files (and the surplus chunks of files that shrank) are removed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::chunk::{Chunker, SECTION_BYTES, sections};
use super::extract::{Extracted, Format, extract};
use super::repeats::{DuplicateFile, SKETCH_ONE_IN, duplicate_files};
use super::walk::{FileSet, SkipReason, Skipped, SourceFile, SyncOptions};
use crate::collection::{Collection, Progress};
use crate::document::Document;
use crate::duplicates::Shingles;
use crate::error::{EngineError, Result};
use crate::search::Retriever;

/// Chunks written per upsert: each batch is durable on its own.
const BATCH: usize = 256;

/// What a sync reports while it runs.
///
/// ```no_run
/// # let collection = sieve_engine::Collection::open("notes.sieve")?;
/// use sieve_engine::{SyncEvent, SyncOptions};
///
/// let report = collection.sync_folder(&SyncOptions::new(["notes"]), &mut |event| match event {
///     SyncEvent::Skipped(skipped) => eprintln!("skipping {skipped}"),
///     SyncEvent::Batch { documents } => eprintln!("writing {documents} chunks"),
///     SyncEvent::Progress(p) => eprintln!("{}: {}/{}", p.stage, p.done, p.total),
///     _ => {}
/// })?;
/// # Ok::<(), sieve_engine::EngineError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SyncEvent<'a> {
    /// A file or folder is left out (also listed in [`SyncReport::skipped`]).
    Skipped(&'a Skipped),
    /// A batch of this many chunks is about to be written: the [`SyncEvent::Progress`] events
    /// that follow are this batch's. How many batches come is not known up front (files are
    /// chunked as they are read).
    Batch {
        /// Chunks in the batch.
        documents: usize,
    },
    /// Progress of the batch being written, as
    /// [`Collection::upsert_with_progress`](crate::Collection::upsert_with_progress) reports it.
    Progress(Progress),
}

/// Files by what a sync did with them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileCounts {
    /// Not stored before: chunked and written.
    pub new: usize,
    /// Stored with another hash: chunked and written again.
    pub changed: usize,
    /// Stored as they are: not read further.
    pub unchanged: usize,
    /// Stored but no longer found (or now excluded): their chunks deleted.
    pub removed: usize,
    /// Files that could not be read, new files without text, and stored files under a folder
    /// that could not be read; what was stored from them stays.
    pub skipped: usize,
}

/// Chunks a sync wrote and deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChunkCounts {
    /// Chunks upserted (of new and changed files).
    pub written: usize,
    /// Chunks deleted (of removed files, and past the end of files that shrank).
    pub deleted: usize,
}

/// What [`Collection::sync_folder`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncReport {
    /// Files by outcome.
    pub files: FileCounts,
    /// Chunks written and deleted.
    pub chunks: ChunkCounts,
    /// Documents in the collection afterwards.
    pub documents: usize,
    /// Files that mostly repeat others' text: their chunks duplicate the others'.
    pub duplicate_files: Vec<DuplicateFile>,
    /// What was left out, and why.
    pub skipped: Vec<Skipped>,
    /// Indexes the last write left behind the store (see [`WriteReport::stale`](crate::WriteReport::stale)).
    pub stale: Vec<Retriever>,
}

impl Collection {
    /// Makes the collection mirror the files under `options`' paths: new and changed files are
    /// chunked, encoded and upserted (in batches of 256 chunks, each durable on its own); chunks
    /// of files no longer found, or excluded now, are deleted. What [`SyncOptions::scan`] then
    /// [`sync_files`](Collection::sync_files) do, in one call.
    ///
    /// Each file is cut into chunks the dense model reads whole ([`Chunker::for_model`]; without
    /// a dense model, 200 words); each chunk is a document with id `<name>#<chunk number>` and
    /// metadata `path` (the name), `chunk`, `title`, `byte_start`, `byte_end` (the chunk's byte
    /// range in the file, or in the text extracted from HTML) and `hash` (SHA-256 of the file).
    /// Documents without that metadata are left alone.
    ///
    /// ```
    /// use sieve_engine::{Collection, CollectionConfig, SyncOptions};
    ///
    /// let dir = std::env::temp_dir().join(format!("sieve-doc-sync-{}", std::process::id()));
    /// std::fs::create_dir_all(dir.join("notes"))?;
    /// std::fs::write(dir.join("notes/tea.md"), "# Tea\n\nSteep green tea for two minutes.")?;
    /// std::fs::write(dir.join("notes/bread.txt"), "Sourdough needs a lively starter.")?;
    /// let bm25_only = CollectionConfig { dense: None, sparse: None, reranker: None, ..Default::default() };
    /// let collection = Collection::create(dir.join("notes.sieve"), bm25_only)?;
    /// let options = SyncOptions::new([dir.join("notes")]).glob("*.md")?;
    ///
    /// let report = collection.sync_folder(&options, &mut |_| {})?;
    /// assert_eq!((report.files.new, report.chunks.written), (1, 1));
    /// assert_eq!(collection.get("tea.md#0")?.unwrap().metadata["title"], "Tea");
    /// // Again: nothing changed, nothing is read or written.
    /// let report = collection.sync_folder(&options, &mut |_| {})?;
    /// assert_eq!((report.files.unchanged, report.chunks.written), (1, 0));
    /// # drop(collection);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sync_folder(&self, options: &SyncOptions, on_event: &mut dyn FnMut(SyncEvent<'_>)) -> Result<SyncReport> {
        let files = options.scan(on_event)?;
        self.sync_files(files, on_event)
    }

    /// The second half of [`sync_folder`](Collection::sync_folder): syncs the files a scan
    /// found. Scanning first lets a caller refuse bad paths before it opens or creates a
    /// collection.
    ///
    /// A file that cannot be read, or is not UTF-8, is skipped and what was indexed from it
    /// before is kept, as is what was indexed from under a folder the scan could not read.
    ///
    /// ```no_run
    /// use sieve_engine::{Collection, CollectionConfig, SyncOptions};
    ///
    /// let files = SyncOptions::new(["notes"]).scan(&mut |_| {})?; // errors before anything is created
    /// let collection = Collection::create("notes.sieve", CollectionConfig::default())?;
    /// let report = collection.sync_files(files, &mut |_| {})?;
    /// println!("{} new, {} chunks", report.files.new, report.chunks.written);
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn sync_files(&self, files: FileSet, on_event: &mut dyn FnMut(SyncEvent<'_>)) -> Result<SyncReport> {
        let stored = stored_files(self)?;
        let mut report = SyncReport::default();
        let counts = &mut report.files;
        let mut present: BTreeSet<String> = BTreeSet::new();
        let mut stale: Vec<String> = Vec::new();
        let mut chunker: Option<Chunker> = None;
        let mut writer = Writer::new(self);
        let mut sketches: Vec<(String, Shingles)> = Vec::new();
        let mut skipped = Vec::new();
        // One file in memory at a time; its chunks go out in batches as they are cut.
        for source in &files.files {
            present.insert(source.name.clone());
            let r = match read_file(source) {
                Ok(r) => r,
                Err(reason) => {
                    let path = source.path.clone();
                    skip(&mut skipped, on_event, Skipped { path, reason });
                    counts.skipped += 1;
                    continue;
                }
            };
            let extracted = extract(source.format, &r.text);
            sketches.push((source.name.clone(), Shingles::sampled(&extracted.text, SKETCH_ONE_IN)));
            let before = stored.get(&source.name);
            match before {
                None => counts.new += 1,
                Some(s) if is_current(s, &r.hash) => {
                    counts.unchanged += 1;
                    continue;
                }
                Some(_) => counts.changed += 1,
            }
            let chunker = match &mut chunker {
                Some(chunker) => chunker,
                empty => empty.insert(match self.dense_model() {
                    Some(model) => Chunker::for_model(model)?,
                    None => Chunker::words(),
                }),
            };
            let count = chunk_documents(&r, &extracted, chunker, &mut |doc| writer.push(doc, on_event))?;
            if count == 0 && before.is_none() {
                // Nothing to store, so nothing would mark it as seen: count it as skipped.
                let path = source.path.clone();
                let reason = SkipReason::NoText;
                skip(&mut skipped, on_event, Skipped { path, reason });
                counts.new -= 1;
                counts.skipped += 1;
            }
            if let Some(s) = before {
                stale.extend(
                    s.chunks
                        .iter()
                        .filter(|(n, _)| **n >= count as u64)
                        .map(|(_, id)| id.clone()),
                );
            }
        }
        let (written, stale_indexes) = writer.finish(on_event)?;
        for (name, s) in &stored {
            if present.contains(name.as_str()) {
                continue;
            }
            if files.under_unreadable(name) {
                counts.skipped += 1;
            } else {
                counts.removed += 1;
                stale.extend(s.chunks.values().cloned());
            }
        }
        report.chunks.written = written;
        if !stale.is_empty() {
            report.chunks.deleted = self.delete(&stale)?;
        }
        report.duplicate_files = duplicate_files(&sketches);
        report.documents = self.len();
        report.skipped = files.skipped;
        report.skipped.extend(skipped);
        report.stale = stale_indexes;
        Ok(report)
    }
}

/// Reports a file left out and keeps it for the report.
fn skip(list: &mut Vec<Skipped>, on_event: &mut dyn FnMut(SyncEvent<'_>), skipped: Skipped) {
    on_event(SyncEvent::Skipped(&skipped));
    list.push(skipped);
}

/// A file read and hashed.
struct Read<'a> {
    source: &'a SourceFile,
    text: String,
    /// Bytes before `text` in the file (a UTF-8 byte-order mark).
    offset: usize,
    hash: String,
}

fn read_file(source: &SourceFile) -> std::result::Result<Read<'_>, SkipReason> {
    let bytes = std::fs::read(&source.path).map_err(|e| SkipReason::Unreadable { error: e.to_string() })?;
    let hash = hex(&Sha256::digest(&bytes));
    let mut text = String::from_utf8(bytes).map_err(|e| SkipReason::NotUtf8 {
        valid_up_to: e.utf8_error().valid_up_to(),
    })?;
    let offset = if text.starts_with('\u{feff}') { 3 } else { 0 };
    text.drain(..offset);
    Ok(Read {
        source,
        text,
        offset,
        hash,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the collection holds for one file.
#[derive(Default)]
struct Stored {
    hashes: BTreeSet<String>,
    chunks: BTreeMap<u64, String>,
}

/// Files indexed before, by name: documents whose metadata has path, chunk and hash.
fn stored_files(collection: &Collection) -> Result<HashMap<String, Stored>> {
    let mut files: HashMap<String, Stored> = HashMap::new();
    for doc in collection.iter() {
        let doc = doc?;
        let m = &doc.metadata;
        if let (Some(path), Some(chunk), Some(hash)) = (m["path"].as_str(), m["chunk"].as_u64(), m["hash"].as_str()) {
            let entry = files.entry(path.to_string()).or_default();
            entry.hashes.insert(hash.to_string());
            entry.chunks.insert(chunk, doc.id);
        }
    }
    Ok(files)
}

/// Whether the stored chunks are exactly chunks 0..n of a file with this hash.
fn is_current(stored: &Stored, hash: &str) -> bool {
    stored.hashes.len() == 1
        && stored.hashes.contains(hash)
        && stored.chunks.keys().copied().eq(0..stored.chunks.len() as u64)
}

/// Cuts one file into chunk documents, handing each to `emit` in order; returns how many.
///
/// The text is chunked one section (about [`SECTION_BYTES`]) at a time, so a huge file is
/// never tokenized whole.
fn chunk_documents(
    r: &Read,
    extracted: &Extracted,
    chunker: &Chunker,
    emit: &mut dyn FnMut(Document) -> Result<()>,
) -> Result<usize> {
    // Offsets into the file, except for HTML where they are into the extracted text.
    let shift = if r.source.format == Format::Html { 0 } else { r.offset };
    let name = &r.source.name;
    let title = extracted.title.clone().unwrap_or_else(|| {
        Path::new(name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let mut n = 0;
    for section in sections(&extracted.text, &extracted.blocks, SECTION_BYTES) {
        let text = &extracted.text[section.range.clone()];
        let ranges = chunker
            .chunk(text, &section.blocks)
            .map_err(|reason| EngineError::Tokenize {
                path: r.source.path.clone(),
                reason,
            })?;
        for (start, end) in ranges {
            let (start, end) = (start + section.range.start, end + section.range.start);
            let metadata = json!({
                "path": name,
                "chunk": n,
                "title": title,
                "byte_start": start + shift,
                "byte_end": end + shift,
                "hash": r.hash,
            });
            emit(Document::new(format!("{name}#{n}"), &extracted.text[start..end]).with_metadata(metadata))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Upserts chunk documents in batches of [`BATCH`] as they arrive.
struct Writer<'a> {
    collection: &'a Collection,
    pending: Vec<Document>,
    written: usize,
    /// The indexes the last write left behind the store (caught up on the next open).
    stale: Vec<Retriever>,
}

impl<'a> Writer<'a> {
    fn new(collection: &'a Collection) -> Self {
        Writer {
            collection,
            pending: Vec::with_capacity(BATCH),
            written: 0,
            stale: Vec::new(),
        }
    }

    fn push(&mut self, doc: Document, on_event: &mut dyn FnMut(SyncEvent<'_>)) -> Result<()> {
        self.pending.push(doc);
        if self.pending.len() >= BATCH {
            self.flush(on_event)?;
        }
        Ok(())
    }

    fn flush(&mut self, on_event: &mut dyn FnMut(SyncEvent<'_>)) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(BATCH));
        let n = batch.len();
        on_event(SyncEvent::Batch { documents: n });
        self.stale = self
            .collection
            .upsert_with_progress(batch, &mut |p| on_event(SyncEvent::Progress(p)))?
            .stale;
        self.written += n;
        Ok(())
    }

    /// Writes what is left; returns how many documents were written and the stale indexes.
    fn finish(mut self, on_event: &mut dyn FnMut(SyncEvent<'_>)) -> Result<(usize, Vec<Retriever>)> {
        self.flush(on_event)?;
        Ok((self.written, self.stale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CollectionConfig;

    fn bm25_only(dir: &Path) -> Collection {
        let config = CollectionConfig {
            dense: None,
            sparse: None,
            reranker: None,
            ..CollectionConfig::default()
        };
        Collection::create(dir.join("db.sieve"), config).unwrap()
    }

    fn sync(collection: &Collection, docs: &Path) -> (SyncReport, Vec<String>) {
        let mut events = Vec::new();
        let report = collection
            .sync_folder(&SyncOptions::new([docs]), &mut |e| match e {
                SyncEvent::Skipped(s) => events.push(format!("skipped {}", s.reason)),
                SyncEvent::Batch { documents } => events.push(format!("batch {documents}")),
                SyncEvent::Progress(_) => {}
            })
            .unwrap();
        (report, events)
    }

    #[test]
    fn new_changed_unchanged_removed_and_skipped_files() {
        let dir = std::env::temp_dir().join(format!("sieve-sync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let docs = dir.join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        let long: String = (0..300).map(|i| format!("w{i} ")).collect();
        std::fs::write(docs.join("long.txt"), &long).unwrap();
        std::fs::write(docs.join("bom.md"), "\u{feff}# Title\n\nText after a byte-order mark.").unwrap();
        std::fs::write(docs.join("empty.txt"), "  \n").unwrap();
        std::fs::write(docs.join("latin1.txt"), b"caf\xe9").unwrap();
        let collection = bm25_only(&dir);

        let (report, events) = sync(&collection, &docs);
        assert_eq!(
            report.files,
            FileCounts {
                new: 2,
                skipped: 2,
                ..FileCounts::default()
            }
        );
        // 300 words in 200-word chunks overlapping by 25, and the Markdown file's one chunk.
        assert_eq!(report.chunks.written, 3);
        assert_eq!(
            events,
            [
                "skipped no text",
                "skipped not valid UTF-8 (invalid byte at offset 3)",
                "batch 3"
            ]
        );
        assert_eq!(report.skipped.len(), 2);
        assert_eq!(report.documents, 3);
        let bom = collection.get("bom.md#0").unwrap().unwrap();
        assert_eq!(bom.metadata["title"], "Title");
        assert_eq!(
            bom.metadata["byte_start"], 3,
            "offsets are into the file, past the mark"
        );
        assert_eq!(collection.get("long.txt#1").unwrap().unwrap().metadata["title"], "long");

        // Unchanged; then long.txt shrinks to one chunk and bom.md goes.
        let (report, _) = sync(&collection, &docs);
        assert_eq!((report.files.unchanged, report.chunks.written), (2, 0));
        std::fs::write(docs.join("long.txt"), "short now").unwrap();
        std::fs::remove_file(docs.join("bom.md")).unwrap();
        let (report, _) = sync(&collection, &docs);
        assert_eq!((report.files.changed, report.files.removed), (1, 1));
        assert_eq!((report.chunks.written, report.chunks.deleted), (1, 2));
        assert_eq!(report.documents, 1);
        drop(collection);
        std::fs::remove_dir_all(&dir).ok();
    }
}
