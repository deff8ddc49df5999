//! `sieve index`: keeps a collection in step with folders of documents. Files are walked,
//! hashed and compared with the hash stored in their chunks' metadata; only new and changed
//! files are chunked and encoded, and the chunks of deleted files (and the surplus chunks of
//! files that shrank) are removed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sieve::SentenceTransformer;
use sieve::engine::duplicates::Shingles;
use sieve::engine::{Collection, Document, Retriever};

use crate::chunk::{Chunker, SECTION_BYTES, sections};
use crate::extract::{EXTENSIONS, Extracted, Format, extract};
use crate::output::{Output, WriteProgress, print_json, warn_stale};
use crate::{Error, Result, open_or_create_collection};

/// Chunks written per upsert: each batch is durable on its own.
const BATCH: usize = 256;

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

/// A file found under one of the PATHs.
struct Source {
    rel: String,
    path: PathBuf,
    format: Format,
}

/// A file read and hashed.
struct Read {
    source: Source,
    text: String,
    /// Bytes before `text` in the file (a UTF-8 byte-order mark).
    offset: usize,
    hash: String,
}

/// What the collection holds for one file.
#[derive(Default)]
struct Stored {
    hashes: BTreeSet<String>,
    chunks: BTreeMap<u64, String>,
}

#[derive(Debug, Default, Serialize)]
struct FileCounts {
    new: usize,
    changed: usize,
    unchanged: usize,
    removed: usize,
    skipped: usize,
}

#[derive(Debug, Default, Serialize)]
struct ChunkCounts {
    written: usize,
    deleted: usize,
}

/// A file whose text mostly repeats other files'.
#[derive(Debug, Serialize)]
struct DuplicateFile {
    path: String,
    /// The files whose text it holds.
    repeats: Vec<String>,
    /// The share of its text found in other files.
    covered: f32,
}

#[derive(Debug, Serialize)]
struct Report {
    files: FileCounts,
    chunks: ChunkCounts,
    documents: usize,
    duplicate_files: Vec<DuplicateFile>,
}

pub fn run(args: Args, out: &Output) -> Result {
    let pattern = args
        .glob
        .as_deref()
        .map(|g| glob::Pattern::new(g).map_err(|e| Error::msg(format!("invalid --glob {g:?}: {e}"))))
        .transpose()?;
    let excludes = args
        .exclude
        .iter()
        .map(|g| glob::Pattern::new(g).map_err(|e| Error::msg(format!("invalid --exclude {g:?}: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    let Walk { sources, unreadable } = walk(&args.paths, pattern.as_ref(), &excludes, out)?;
    if sources.is_empty() {
        let paths: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        let glob = args
            .glob
            .as_deref()
            .map(|g| format!(" matching {g:?}"))
            .unwrap_or_default();
        return Err(Error::msg(format!(
            "no indexable files ({EXTENSIONS}){glob} under {}: nothing indexed",
            paths.join(", ")
        )));
    }
    let collection = open_or_create_collection(&args.db, out)?;
    let stored = stored_files(&collection)?;
    let mut files = FileCounts::default();
    let mut present: BTreeSet<String> = BTreeSet::new();
    let mut stale: Vec<String> = Vec::new();
    let mut chunker: Option<Chunker> = None;
    let mut writer = Writer::new(&collection, out);
    let mut sketches: Vec<(String, Shingles)> = Vec::new();
    // One file in memory at a time; its chunks go out in batches as they are cut.
    for source in sources {
        let r = match read_file(&source) {
            Ok(r) => r,
            Err(why) => {
                out.warn(&format!("skipping {}: {why}", source.path.display()));
                files.skipped += 1;
                present.insert(source.rel);
                continue;
            }
        };
        present.insert(r.source.rel.clone());
        let extracted = extract(r.source.format, &r.text);
        sketches.push((r.source.rel.clone(), Shingles::sampled(&extracted.text, SKETCH_ONE_IN)));
        let before = stored.get(&r.source.rel);
        match before {
            None => files.new += 1,
            Some(s) if is_current(s, &r.hash) => {
                files.unchanged += 1;
                continue;
            }
            Some(_) => files.changed += 1,
        }
        if chunker.is_none() {
            // The chunker keeps a copy of the tokenizer; the model itself is not needed after this.
            chunker = Some(match load_tokenizer_model(&collection)? {
                Some(model) => model_chunker(&model)?,
                None => Chunker::words(),
            });
        }
        let chunker = chunker.as_ref().expect("set just above");
        let count = documents(&r, &extracted, chunker, &mut |doc| writer.push(doc))?;
        if count == 0 && before.is_none() {
            // Nothing to store, so nothing would mark it as seen: count it as skipped.
            out.note(&format!("skipping {}: no text", r.source.path.display()));
            files.new -= 1;
            files.skipped += 1;
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
    let mut chunks = ChunkCounts {
        written: writer.finish()?,
        deleted: 0,
    };
    // What was indexed from a directory that cannot be read now stays, as for unreadable files.
    let under_unreadable = |rel: &str| {
        unreadable
            .iter()
            .any(|dir| dir.is_empty() || rel.strip_prefix(dir.as_str()).is_some_and(|r| r.starts_with('/')))
    };
    for (rel, s) in &stored {
        if present.contains(rel.as_str()) {
            continue;
        }
        if under_unreadable(rel) {
            files.skipped += 1;
        } else {
            files.removed += 1;
            stale.extend(s.chunks.values().cloned());
        }
    }
    if !stale.is_empty() {
        chunks.deleted = collection.delete(&stale)?;
    }
    let duplicate_files = duplicate_files(&sketches);
    for d in &duplicate_files {
        let mut named = d.repeats.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        if d.repeats.len() > 5 {
            named.push_str(&format!(" and {} more", d.repeats.len() - 5));
        }
        out.warn(&format!(
            "{} repeats the text of {} ({:.0}% of it is in other files): its chunks duplicate theirs; leave it out with --exclude '{}'",
            d.path,
            named,
            100.0 * d.covered,
            glob::Pattern::escape(&d.path)
        ));
    }
    let report = Report {
        files,
        chunks,
        documents: collection.len(),
        duplicate_files,
    };
    collection.close()?;
    if args.json {
        return print_json(&report);
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

/// What [`walk`] found.
struct Walk {
    /// The indexable files, sorted by relative path.
    sources: Vec<Source>,
    /// Relative paths of the directories that could not be read (`""`: a whole root).
    unreadable: Vec<String>,
}

/// The indexable files under `paths`, and the directories that could not be read.
fn walk(paths: &[PathBuf], pattern: Option<&glob::Pattern>, excludes: &[glob::Pattern], out: &Output) -> Result<Walk> {
    let mut found: BTreeMap<String, Source> = BTreeMap::new();
    let mut unreadable = Vec::new();
    for root in paths {
        let meta = std::fs::metadata(root).map_err(|e| Error::msg(format!("cannot index {}: {e}", root.display())))?;
        let mut candidates: Vec<(String, PathBuf)> = Vec::new();
        if meta.is_file() {
            match root.file_name().and_then(|n| n.to_str()) {
                Some(name) => candidates.push((name.to_string(), root.clone())),
                None => return Err(Error::msg(format!("{}: not a file name", root.display()))),
            }
        } else {
            let walker = walkdir::WalkDir::new(root)
                .follow_links(true)
                .sort_by_file_name()
                .into_iter()
                .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
            for entry in walker {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        let why = e.to_string().replace('\n', " ");
                        match e.path().map(|p| relative(p, root)) {
                            Some(Some(rel)) => {
                                out.warn(&format!("cannot read {why}; keeping what was indexed from it"));
                                unreadable.push(rel);
                            }
                            _ => out.warn(&format!("skipping {why}")),
                        }
                        continue;
                    }
                };
                if !entry.file_type().is_file() {
                    continue;
                }
                match relative(entry.path(), root) {
                    Some(rel) => candidates.push((rel, entry.path().to_path_buf())),
                    None => out.warn(&format!("skipping {}: the name is not UTF-8", entry.path().display())),
                }
            }
        }
        for (rel, path) in candidates {
            let Some(format) = Format::of(&path) else {
                if meta.is_file() {
                    out.warn(&format!("skipping {}: not one of {EXTENSIONS}", path.display()));
                }
                continue;
            };
            if pattern.is_some_and(|p| !p.matches(&rel)) || excludes.iter().any(|p| p.matches(&rel)) {
                continue;
            }
            if let Some(other) = found.get(&rel) {
                if same_file(&other.path, &path) {
                    continue;
                }
                return Err(Error::msg(format!(
                    "{} and {} would both be indexed as {rel:?}: index them into separate collections",
                    other.path.display(),
                    path.display()
                )));
            }
            found.insert(rel.clone(), Source { rel, path, format });
        }
    }
    Ok(Walk {
        sources: found.into_values().collect(),
        unreadable,
    })
}

/// `path` below `root` as the `/`-separated name it is stored under; `None` when not UTF-8.
fn relative(path: &Path, root: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    parts.map(|parts| parts.join("/"))
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

fn read_file(source: &Source) -> std::result::Result<Read, String> {
    let bytes = std::fs::read(&source.path).map_err(|e| format!("cannot read it: {e}"))?;
    let hash = hex(&Sha256::digest(&bytes));
    let mut text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "not valid UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    let offset = if text.starts_with('\u{feff}') { 3 } else { 0 };
    text.drain(..offset);
    Ok(Read {
        source: Source {
            rel: source.rel.clone(),
            path: source.path.clone(),
            format: source.format,
        },
        text,
        offset,
        hash,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One shingle in this many is kept in a file's sketch (see [`Shingles::sampled`]).
const SKETCH_ONE_IN: u64 = 4;
/// Smallest share of a file found in others, and of another file found in it, to report it.
const MOSTLY: f32 = 0.8;
/// Files with fewer sampled shingles (about 60 words of their own) are too small to report or
/// to count as repeated: redirect stubs, empty index pages.
const MIN_SKETCH: usize = 16;

/// The files that mostly repeat others' text, each with the files it holds. Of files that hold
/// each other (copies), the one whose path sorts last is reported. Text found in more than a
/// tenth of the files (and more than two), such as a site's navigation on every page, is
/// boilerplate and ignored.
fn duplicate_files(sketches: &[(String, Shingles)]) -> Vec<DuplicateFile> {
    // How many files hold each sampled shingle.
    let mut holders: HashMap<u64, usize> = HashMap::new();
    for (_, s) in sketches {
        for &h in s.hashes() {
            *holders.entry(h).or_default() += 1;
        }
    }
    let boilerplate = (sketches.len() / 10).max(2);
    let sketches: Vec<(String, Shingles)> = sketches
        .iter()
        .map(|(path, s)| {
            let mut s = s.clone();
            s.retain(|h| holders[h] <= boilerplate);
            if s.len() < MIN_SKETCH {
                s = Shingles::default();
            }
            (path.clone(), s)
        })
        .collect();
    let mut found = Vec::new();
    for (i, (path, b)) in sketches.iter().enumerate() {
        if b.is_empty() {
            continue;
        }
        let covered = b.hashes().iter().filter(|h| holders[h] > 1).count() as f32 / b.len() as f32;
        if covered < MOSTLY {
            continue;
        }
        let repeats: Vec<String> = sketches
            .iter()
            .enumerate()
            .filter(|&(j, (other, a))| {
                j != i && !a.is_empty() && a.contained_in(b) >= MOSTLY && (b.contained_in(a) < MOSTLY || other < path)
            })
            .map(|(_, (other, _))| other.clone())
            .collect();
        if !repeats.is_empty() {
            found.push(DuplicateFile {
                path: path.clone(),
                repeats,
                covered,
            });
        }
    }
    found
}

/// Files indexed before, by relative path: documents whose metadata has path, chunk and hash.
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

/// The dense model, loaded again for its tokenizer and max_seq_length (the collection keeps
/// its own copy private); `None` when the collection has no dense model.
fn load_tokenizer_model(collection: &Collection) -> Result<Option<SentenceTransformer>> {
    collection
        .config()
        .dense
        .as_deref()
        .map(|id| SentenceTransformer::from_pretrained(id).map_err(Error::from))
        .transpose()
}

/// A chunker counting with the model's tokenizer: max_seq_length less the special tokens and
/// the document prompt the collection prepends.
fn model_chunker(model: &SentenceTransformer) -> Result<Chunker<'static>> {
    let mut tokenizer = model.tokenizer().inner().clone();
    tokenizer
        .with_truncation(None)
        .map_err(|e| Error::msg(format!("tokenizer: {e}")))?;
    let prompt_tokens = match model.prompts().get("document") {
        Some(prompt) => tokenizer
            .encode(prompt.as_str(), false)
            .map_err(|e| Error::msg(format!("tokenizer: {e}")))?
            .len(),
        None => 0,
    };
    let budget = model.max_seq_length().saturating_sub(2 + prompt_tokens);
    let tokenize = move |text: &str| {
        tokenizer
            .encode(text, false)
            .map(|enc| enc.get_offsets().to_vec())
            .map_err(|e| e.to_string())
    };
    Ok(Chunker::new(Box::new(tokenize), budget))
}

/// Cuts one file into chunk documents, handing each to `emit` in order; returns how many.
///
/// The text is chunked one section (about [`SECTION_BYTES`]) at a time, so a huge file is
/// never tokenized whole.
fn documents(
    r: &Read,
    extracted: &Extracted,
    chunker: &Chunker,
    emit: &mut dyn FnMut(Document) -> Result,
) -> Result<usize> {
    // Offsets into the file, except for HTML where they are into the extracted text.
    let shift = if r.source.format == Format::Html { 0 } else { r.offset };
    let title = extracted.title.clone().unwrap_or_else(|| {
        Path::new(&r.source.rel)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let mut n = 0;
    for section in sections(&extracted.text, &extracted.blocks, SECTION_BYTES) {
        let text = &extracted.text[section.range.clone()];
        let ranges = chunker
            .chunk(text, &section.blocks)
            .map_err(|e| Error::msg(format!("{}: cannot tokenize: {e}", r.source.path.display())))?;
        for (start, end) in ranges {
            let (start, end) = (start + section.range.start, end + section.range.start);
            let metadata: Value = json!({
                "path": r.source.rel,
                "chunk": n,
                "title": title,
                "byte_start": start + shift,
                "byte_end": end + shift,
                "hash": r.hash,
            });
            emit(Document::new(format!("{}#{n}", r.source.rel), &extracted.text[start..end]).with_metadata(metadata))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Upserts chunk documents in batches of [`BATCH`] as they arrive, with one progress bar.
struct Writer<'a> {
    collection: &'a Collection,
    out: &'a Output,
    progress: WriteProgress,
    pending: Vec<Document>,
    written: usize,
    /// The indexes the last write left behind the store (caught up on the next open).
    stale: Vec<Retriever>,
}

impl<'a> Writer<'a> {
    fn new(collection: &'a Collection, out: &'a Output) -> Self {
        let config = collection.config();
        let stages = usize::from(config.dense.is_some()) + usize::from(config.sparse.is_some());
        Writer {
            collection,
            out,
            progress: WriteProgress::new(out, 0, stages),
            pending: Vec::with_capacity(BATCH),
            written: 0,
            stale: Vec::new(),
        }
    }

    fn push(&mut self, doc: Document) -> Result {
        self.pending.push(doc);
        if self.pending.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(BATCH));
        let n = batch.len();
        self.progress.extend(n);
        self.stale = self
            .collection
            .upsert_with_progress(batch, &mut self.progress.callback(n))?
            .stale;
        self.written += n;
        Ok(())
    }

    /// Writes what is left; returns how many documents were written.
    fn finish(mut self) -> Result<usize> {
        self.flush()?;
        self.progress.finish();
        warn_stale(self.out, &self.stale);
        Ok(self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twelve chapters that all carry the same navigation, two redirect stubs and a page that
    /// concatenates three chapters: only the page is reported, and it names those three.
    #[test]
    fn only_pages_repeating_whole_files_are_reported_past_navigation_and_stubs() {
        let nav = "Contents Introduction Ownership Borrowing Lifetimes Traits Generics Closures Iterators Errors Macros Unsafe Appendix";
        let body = |i: usize| (0..120).map(|w| format!("c{i}w{w}")).collect::<Vec<_>>().join(" ");
        let mut files: Vec<(String, String)> = (0..12)
            .map(|i| (format!("ch{i:02}.html"), format!("{nav} {}", body(i))))
            .collect();
        files.push((
            "print.html".into(),
            format!("{nav} {} {} {}", body(1), body(2), body(3)),
        ));
        for stub in ["old-a.html", "old-b.html"] {
            files.push((
                stub.into(),
                "Redirecting to the new page. Click here if you are not redirected.".into(),
            ));
        }
        let sketches: Vec<(String, Shingles)> = files
            .iter()
            .map(|(path, text)| (path.clone(), Shingles::sampled(text, SKETCH_ONE_IN)))
            .collect();
        let found = duplicate_files(&sketches);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "print.html");
        assert_eq!(found[0].repeats, ["ch01.html", "ch02.html", "ch03.html"]);
        assert!(found[0].covered > 0.95, "{}", found[0].covered);
    }
}
