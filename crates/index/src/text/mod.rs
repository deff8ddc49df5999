//! Full-text search: [`TextIndex`], BM25 over documents keyed by [`DocId`], on tantivy.
//!
//! This module owns the tantivy index of a collection: its schema (the id as an indexed fast
//! field, the text indexed with term frequencies and nothing stored), the analyzer built from
//! [`TextIndexConfig`], turning free-text queries into BM25 queries (`search.rs`), and the
//! directory layout:
//!
//! ```text
//! dir/
//!   text-index.cfg   the TextIndexConfig, in the crate's checked envelope
//!   tantivy/         tantivy's own files (meta.json, segments, the writer lock)
//! ```
//!
//! Changes become visible to searches, and durable, at [`TextIndex::commit`].

mod config;
mod search;

use std::fmt;
use std::path::{Path, PathBuf};

use tantivy::collector::Count;
use tantivy::directory::error::{LockError, OpenDirectoryError};
use tantivy::directory::{MmapDirectory, RamDirectory};
use tantivy::query::TermQuery;
use tantivy::schema::{FAST, Field, FieldType, INDEXED, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::store::Compressor;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, TantivyDocument, TantivyError, Term};

pub use config::{Language, Stopwords, TextIndexConfig};

use crate::error::{IndexError, Result};
use crate::filter::AllowSet;
use crate::hit::{DocId, Hit};
use crate::persist;

const CONFIG_FILE: &str = "text-index.cfg";
const CONFIG_MAGIC: &[u8; 8] = b"SIEVTXT\0";
const CONFIG_VERSION: u32 = 1;
const TANTIVY_DIR: &str = "tantivy";
const ID_FIELD: &str = "id";
const TEXT_FIELD: &str = "text";
const TOKENIZER: &str = "sieve";

/// A BM25 full-text index over documents keyed by [`DocId`], stored in its own directory.
///
/// Adding an id that is present replaces its text. [`add`](Self::add) and
/// [`remove`](Self::remove) are buffered; [`commit`](Self::commit) makes them durable and
/// visible to [`search`](Self::search), [`len`](Self::len) and [`contains`](Self::contains).
/// Dropping the index discards uncommitted changes. One `TextIndex` at a time may hold a
/// directory (tantivy locks it, across processes too).
///
/// ```
/// use sieve_index::{TextIndex, TextIndexConfig};
///
/// let mut index = TextIndex::in_memory(TextIndexConfig::default())?;
/// index.add(&[(1, "Vitamin D deficiency in adults"), (2, "Sleep and memory consolidation")])?;
/// index.commit()?;
/// let hits = index.search("does vitamin D matter?", 10, None)?;
/// assert_eq!(hits[0].id, 1);
/// assert_eq!(hits.len(), 1);
/// # Ok::<(), sieve_index::IndexError>(())
/// ```
pub struct TextIndex {
    index: Index,
    /// `None` only while dropping (see the `Drop` impl).
    writer: Option<IndexWriter<TantivyDocument>>,
    reader: IndexReader,
    analyzer: TextAnalyzer,
    id: Field,
    text: Field,
    config: TextIndexConfig,
    dir: Option<PathBuf>,
}

impl TextIndex {
    /// Creates an empty index in `dir` (created if missing), which must not already hold one.
    ///
    /// ```
    /// use sieve_index::{TextIndex, TextIndexConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("sieve-doc-text-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let mut index = TextIndex::create(&dir, TextIndexConfig::default())?;
    /// index.add(&[(7, "a persistent document")])?;
    /// index.commit()?;
    /// drop(index);
    /// assert!(TextIndex::open(&dir)?.contains(7)?);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), sieve_index::IndexError>(())
    /// ```
    pub fn create(dir: impl AsRef<Path>, config: TextIndexConfig) -> Result<Self> {
        let dir = dir.as_ref();
        config.validate()?;
        let config_path = dir.join(CONFIG_FILE);
        let tantivy_dir = dir.join(TANTIVY_DIR);
        if config_path.exists() {
            return Err(IndexError::InvalidParameter(format!(
                "{} already holds a text index: open it, or remove the directory first",
                dir.display()
            )));
        }
        if tantivy_dir.exists() {
            return Err(IndexError::InvalidParameter(format!(
                "{} holds an incomplete text index ({TANTIVY_DIR}/ without {CONFIG_FILE}, as an interrupted \
                 create leaves it): remove the directory first",
                dir.display()
            )));
        }
        persist::ensure_dir(&tantivy_dir)?;
        let directory = MmapDirectory::open(&tantivy_dir).map_err(|e| directory_error(&tantivy_dir, e))?;
        let index = Index::create(directory, schema(), settings()).map_err(|e| open_error(dir, e))?;
        // The config is written last: a directory without it holds no index.
        let payload = bincode::serde::encode_to_vec(&config, bincode::config::standard())
            .map_err(|e| IndexError::Text(format!("cannot encode the text index config: {e}")))?;
        persist::write_checked(&config_path, CONFIG_MAGIC, CONFIG_VERSION, &payload)?;
        Self::assemble(index, config, Some(dir.to_path_buf()))
    }

    /// Opens the index saved in `dir`, with the config it was created with.
    ///
    /// A missing index is [`IndexError::NotFound`]; a damaged or foreign one (including any
    /// segment file failing its checksum, checked here) is [`IndexError::Corrupt`].
    ///
    /// ```
    /// use sieve_index::{IndexError, TextIndex};
    ///
    /// let dir = std::env::temp_dir().join(format!("sieve-doc-text-open-{}", std::process::id()));
    /// match TextIndex::open(&dir) {
    ///     Ok(index) => println!("{} documents", index.len()),
    ///     Err(IndexError::NotFound { .. }) => println!("no index yet in {}", dir.display()),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok::<(), IndexError>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let config_path = dir.join(CONFIG_FILE);
        let payload = persist::read_checked(&config_path, CONFIG_MAGIC, CONFIG_VERSION)?;
        let (config, _): (TextIndexConfig, usize) =
            bincode::serde::decode_from_slice(&payload, bincode::config::standard())
                .map_err(|e| IndexError::corrupt(&config_path, format!("undecodable config: {e}")))?;
        config
            .validate()
            .map_err(|e| IndexError::corrupt(&config_path, e.to_string()))?;

        let tantivy_dir = dir.join(TANTIVY_DIR);
        let directory = MmapDirectory::open(&tantivy_dir).map_err(|e| directory_error(&tantivy_dir, e))?;
        let index = Index::open(directory).map_err(|e| open_error(&tantivy_dir, e))?;
        if fields(&index.schema()).is_none() {
            return Err(IndexError::corrupt(
                &tantivy_dir,
                "not a sieve text index: unexpected schema",
            ));
        }
        let damaged = index.validate_checksum().map_err(|e| open_error(&tantivy_dir, e))?;
        if let Some(file) = damaged.iter().min() {
            return Err(IndexError::corrupt(tantivy_dir.join(file), "checksum mismatch"));
        }
        Self::assemble(index, config, Some(dir.to_path_buf()))
    }

    /// An index that lives in memory only, for tests and scratch work.
    ///
    /// ```
    /// use sieve_index::text::{Stopwords, TextIndex, TextIndexConfig};
    ///
    /// let config = TextIndexConfig { stemmer: None, stopwords: Stopwords::None, ..TextIndexConfig::default() };
    /// let mut index = TextIndex::in_memory(config)?;
    /// index.add(&[(1, "the running man")])?;
    /// index.commit()?;
    /// assert!(index.search("run", 10, None)?.is_empty()); // unstemmed: "run" is not "running"
    /// assert_eq!(index.dir(), None);
    /// # Ok::<(), sieve_index::IndexError>(())
    /// ```
    pub fn in_memory(config: TextIndexConfig) -> Result<Self> {
        config.validate()?;
        let index = Index::create(RamDirectory::create(), schema(), settings()).map_err(text_error)?;
        Self::assemble(index, config, None)
    }

    fn assemble(index: Index, config: TextIndexConfig, dir: Option<PathBuf>) -> Result<Self> {
        let place = dir.clone().unwrap_or_else(|| PathBuf::from("<memory>"));
        let analyzer = config.analyzer()?;
        index.tokenizers().register(TOKENIZER, analyzer.clone());
        let (id, text) = fields(&index.schema()).ok_or_else(|| IndexError::corrupt(&place, "unexpected schema"))?;
        let writer = index
            .writer(config.writer_memory_bytes)
            .map_err(|e| open_error(&place, e))?;
        // A writer killed before its commit leaves files that no commit references; the next
        // writer would reuse their names (e.g. a segment's `.del` at the same opstamp) and fail
        // with "FileAlreadyExists". tantivy registers every file before writing it, so its
        // garbage collection removes exactly those.
        writer
            .garbage_collect_files()
            .wait()
            .map_err(|e| open_error(&place, e))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| open_error(&place, e))?;
        Ok(TextIndex {
            index,
            writer: Some(writer),
            reader,
            analyzer,
            id,
            text,
            config,
            dir,
        })
    }

    fn writer(&mut self) -> &mut IndexWriter<TantivyDocument> {
        self.writer.as_mut().expect("the writer lives until drop")
    }

    /// Adds documents, replacing the text of ids already present (the last wins within a call).
    pub fn add(&mut self, docs: &[(DocId, &str)]) -> Result<()> {
        for &(id, text) in docs {
            let term = self.id_term(id);
            self.writer().delete_term(term);
            let mut doc = TantivyDocument::new();
            doc.add_u64(self.id, u64::from(id));
            doc.add_text(self.text, text);
            self.writer().add_document(doc).map_err(text_error)?;
        }
        Ok(())
    }

    /// Removes documents; ids not present are ignored.
    pub fn remove(&mut self, ids: &[DocId]) {
        for &id in ids {
            let term = self.id_term(id);
            self.writer().delete_term(term);
        }
    }

    /// Makes every change since the last commit durable and visible to searches.
    pub fn commit(&mut self) -> Result<()> {
        self.writer().commit().map_err(text_error)?;
        self.reader.reload().map_err(text_error)
    }

    /// Discards every change since the last commit.
    pub fn rollback(&mut self) -> Result<()> {
        self.writer().rollback().map(drop).map_err(text_error)
    }

    /// The best `k` committed documents for a free-text `query` under BM25, best first, ties by
    /// id ascending, restricted to `filter` if given.
    ///
    /// Any string is accepted: it is analysed like the documents, never parsed as query syntax.
    /// A query with no term left (empty, punctuation, only stop words) matches nothing.
    ///
    /// ```
    /// use sieve_index::{AllowSet, TextIndex, TextIndexConfig};
    ///
    /// let mut index = TextIndex::in_memory(TextIndexConfig::default())?;
    /// index.add(&[(1, "solar panels on roofs"), (2, "solar power storage")])?;
    /// index.commit()?;
    /// let only_two: AllowSet = [2].into_iter().collect();
    /// assert_eq!(index.search("solar", 10, Some(&only_two))?[0].id, 2);
    /// assert!(index.search("the (AND", 10, None)?.is_empty()); // not query syntax; only a stop word
    /// # Ok::<(), sieve_index::IndexError>(())
    /// ```
    pub fn search(&self, query: &str, k: usize, filter: Option<&AllowSet>) -> Result<Vec<Hit>> {
        if k == 0 || filter.is_some_and(|f| f.is_empty()) {
            return Ok(Vec::new());
        }
        let Some(query) = search::bm25_query(&self.analyzer, self.text, query) else {
            return Ok(Vec::new());
        };
        search::top_k(&self.reader.searcher(), query.as_ref(), k, filter)
    }

    /// Number of committed documents.
    pub fn len(&self) -> usize {
        usize::try_from(self.reader.searcher().num_docs()).unwrap_or(usize::MAX)
    }

    /// Whether no committed document is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `id` is among the committed documents.
    pub fn contains(&self, id: DocId) -> Result<bool> {
        let query = TermQuery::new(self.id_term(id), IndexRecordOption::Basic);
        Ok(self.reader.searcher().search(&query, &Count).map_err(text_error)? > 0)
    }

    /// The settings this index analyses text with.
    pub fn config(&self) -> &TextIndexConfig {
        &self.config
    }

    /// The directory this index lives in; `None` in memory.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn id_term(&self, id: DocId) -> Term {
        Term::from_field_u64(self.id, u64::from(id))
    }
}

impl fmt::Debug for TextIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextIndex")
            .field("dir", &self.dir)
            .field("len", &self.len())
            .field("config", &self.config)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

fn schema() -> Schema {
    let mut builder = Schema::builder();
    builder.add_u64_field(ID_FIELD, INDEXED | FAST);
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(TOKENIZER)
        .set_index_option(IndexRecordOption::WithFreqs);
    builder.add_text_field(TEXT_FIELD, TextOptions::default().set_indexing_options(indexing));
    builder.build()
}

fn settings() -> IndexSettings {
    // Nothing is stored, so the doc store needs no compressor (and tantivy none of its codecs).
    IndexSettings {
        docstore_compression: Compressor::None,
        ..IndexSettings::default()
    }
}

/// The id and text fields, if `schema` is the one [`schema`] builds.
fn fields(schema: &Schema) -> Option<(Field, Field)> {
    let id = schema.get_field(ID_FIELD).ok()?;
    let text = schema.get_field(TEXT_FIELD).ok()?;
    let id_ok = matches!(schema.get_field_entry(id).field_type(),
        FieldType::U64(options) if options.is_indexed() && options.is_fast());
    let text_ok = matches!(schema.get_field_entry(text).field_type(),
        FieldType::Str(options) if options.get_indexing_options().is_some_and(|i| i.tokenizer() == TOKENIZER
            && i.index_option() == IndexRecordOption::WithFreqs));
    (id_ok && text_ok).then_some((id, text))
}

pub(crate) fn text_error(e: TantivyError) -> IndexError {
    IndexError::Text(e.to_string())
}

/// Errors while opening: a held lock and damaged files get messages that say what to do.
fn open_error(path: &Path, e: TantivyError) -> IndexError {
    match e {
        TantivyError::LockFailure(LockError::LockBusy, _) => IndexError::Text(format!(
            "{} is already open for writing by another TextIndex (in this or another process); close that one first",
            path.display()
        )),
        TantivyError::DataCorruption(_)
        | TantivyError::IncompatibleIndex(_)
        | TantivyError::SchemaError(_)
        | TantivyError::DeserializeError(_)
        | TantivyError::OpenReadError(_) => IndexError::corrupt(path, e.to_string()),
        TantivyError::IoError(io) => IndexError::io(path, std::io::Error::new(io.kind(), io.to_string())),
        e => text_error(e),
    }
}

fn directory_error(path: &Path, e: OpenDirectoryError) -> IndexError {
    match e {
        OpenDirectoryError::DoesNotExist(_) => IndexError::corrupt(path, "the tantivy directory is missing"),
        OpenDirectoryError::NotADirectory(_) => IndexError::corrupt(path, "expected a directory"),
        e => IndexError::Text(e.to_string()),
    }
}

impl Drop for TextIndex {
    /// Waits for tantivy's merge threads: one still running after the drop would later write
    /// its `meta.json` over that of an index reopened on the same folder in this process (and
    /// bring back documents deleted since). Uncommitted changes are discarded, as before.
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            let _ = writer.wait_merging_threads();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sieve-text-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn ids(hits: &[Hit]) -> Vec<DocId> {
        hits.iter().map(|h| h.id).collect()
    }

    fn small() -> TextIndex {
        let mut index = TextIndex::in_memory(TextIndexConfig::default()).unwrap();
        index
            .add(&[
                (10, "Vitamin D deficiency and bone density in adults"),
                (20, "Sleep deprivation impairs memory consolidation"),
                (30, "Bone fractures in elderly patients with low vitamin levels"),
            ])
            .unwrap();
        index.commit().unwrap();
        index
    }

    #[test]
    fn index_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<TextIndex>();
    }

    #[test]
    fn add_search_remove_and_upsert() {
        let mut index = small();
        assert_eq!(index.len(), 3);
        let hits = index.search("vitamin D and bones", 10, None).unwrap();
        assert_eq!(ids(&hits), [10, 30]);
        assert!(hits[0].score > hits[1].score && hits[1].score > 0.0);

        index.remove(&[10, 99]);
        index.add(&[(20, "vitamin supplements")]).unwrap();
        // Not visible before the commit.
        assert_eq!(ids(&index.search("vitamin", 10, None).unwrap()), [10, 30]);
        index.commit().unwrap();
        assert_eq!(index.len(), 2);
        assert!(!index.contains(10).unwrap() && index.contains(20).unwrap());
        assert_eq!(ids(&index.search("vitamin", 10, None).unwrap()), [20, 30]);
        assert!(
            index.search("sleep memory", 10, None).unwrap().is_empty(),
            "replaced text is gone"
        );
    }

    #[test]
    fn same_id_twice_in_one_call_keeps_the_last() {
        let mut index = TextIndex::in_memory(TextIndexConfig::default()).unwrap();
        index.add(&[(1, "first text"), (1, "second text")]).unwrap();
        index.commit().unwrap();
        assert_eq!(index.len(), 1);
        assert!(index.search("first", 10, None).unwrap().is_empty());
        assert_eq!(ids(&index.search("second", 10, None).unwrap()), [1]);
    }

    #[test]
    fn rollback_discards_pending_changes() {
        let mut index = small();
        index.remove(&[10]);
        index.add(&[(40, "vitamin")]).unwrap();
        index.rollback().unwrap();
        index.commit().unwrap();
        assert_eq!(ids(&index.search("vitamin", 10, None).unwrap()), [10, 30]);
    }

    #[test]
    fn ties_break_by_id_across_segments() {
        let mut index = TextIndex::in_memory(TextIndexConfig::default()).unwrap();
        // One commit per document: one segment each, added in descending id order.
        for id in (1..=12).rev() {
            index.add(&[(id, "identical text")]).unwrap();
            index.commit().unwrap();
        }
        let hits = index.search("identical", 5, None).unwrap();
        assert_eq!(ids(&hits), [1, 2, 3, 4, 5]);
        assert!(hits.iter().all(|h| h.score == hits[0].score));
    }

    #[test]
    fn filter_still_returns_k_hits() {
        let mut index = TextIndex::in_memory(TextIndexConfig::default()).unwrap();
        let texts: Vec<String> = (0..200).map(|i| "cell ".repeat(1 + i % 7)).collect();
        let docs: Vec<(DocId, &str)> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| (i as DocId, t.as_str()))
            .collect();
        index.add(&docs).unwrap();
        index.commit().unwrap();
        let allow: AllowSet = (0..200).filter(|i| i % 10 == 3).collect();
        let hits = index.search("cell", 10, Some(&allow)).unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| allow.contains(h.id)));
        assert!(hits.windows(2).all(|w| w[0].rank_cmp(&w[1]).is_le()));
        assert!(index.search("cell", 10, Some(&AllowSet::new())).unwrap().is_empty());
        let few: AllowSet = [5, 6, 1000].into_iter().collect();
        assert_eq!(ids(&index.search("cell", 10, Some(&few)).unwrap()).len(), 2);
    }

    #[test]
    fn any_query_string_is_accepted() {
        let index = small();
        let weird = [
            "",
            "   ",
            "the of and",
            "\"unbalanced quote",
            "(vitamin AND bone) OR NOT sleep",
            "title:vitamin",
            "vitamin^3 bone~2 memo* [a TO b] {x}",
            "+vitamin -bone",
            "\\ / : ; ! ? ~ * ^ & | < > = @ #",
            "ビタミン 维生素 витамин émoji 🦴",
            "\u{0}\u{200b}\u{feff}",
            &"vitamin ".repeat(10_000),
            &"x".repeat(100_000),
        ];
        for query in weird {
            let hits = index.search(query, 10, None);
            assert!(hits.is_ok(), "{query:?}: {hits:?}");
        }
        assert!(index.search("", 10, None).unwrap().is_empty());
        assert!(index.search("the of and", 10, None).unwrap().is_empty());
        // Operators are words like any other (here stop words): NOT does not exclude "sleep".
        let mut got = ids(&index.search("(vitamin AND bone) OR NOT sleep", 10, None).unwrap());
        got.sort_unstable();
        assert_eq!(got, [10, 20, 30]);
    }

    #[test]
    fn zero_k_and_empty_index_give_nothing() {
        let index = small();
        assert!(index.search("vitamin", 0, None).unwrap().is_empty());
        let empty = TextIndex::in_memory(TextIndexConfig::default()).unwrap();
        assert!(empty.is_empty());
        assert!(empty.search("vitamin", 10, None).unwrap().is_empty());
        assert!(!empty.contains(1).unwrap());
    }

    #[test]
    fn reopens_with_its_config_and_documents() {
        let dir = tempdir("reopen");
        let config = TextIndexConfig {
            stemmer: None,
            ..TextIndexConfig::default()
        };
        {
            let mut index = TextIndex::create(&dir, config.clone()).unwrap();
            index.add(&[(1, "running dogs"), (2, "a cat runs")]).unwrap();
            index.commit().unwrap();
            index.add(&[(3, "never committed")]).unwrap();
        }
        let mut index = TextIndex::open(&dir).unwrap();
        assert_eq!(index.config(), &config);
        assert_eq!(index.dir(), Some(dir.as_path()));
        assert_eq!(index.len(), 2);
        // No stemming: "running" does not match "runs".
        assert_eq!(ids(&index.search("running", 10, None).unwrap()), [1]);
        index.remove(&[1]);
        index.commit().unwrap();
        drop(index);
        assert_eq!(TextIndex::open(&dir).unwrap().len(), 1);
        assert!(matches!(
            TextIndex::create(&dir, config),
            Err(IndexError::InvalidParameter(_))
        ));
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_second_writer_gets_a_clear_error() {
        let dir = tempdir("lock");
        let first = TextIndex::create(&dir, TextIndexConfig::default()).unwrap();
        let err = TextIndex::open(&dir).unwrap_err();
        assert!(
            matches!(&err, IndexError::Text(m) if m.contains("already open for writing")),
            "{err}"
        );
        drop(first);
        assert!(TextIndex::open(&dir).is_ok());
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn missing_foreign_and_corrupt_directories_are_typed_errors() {
        let dir = tempdir("damage");
        assert!(matches!(TextIndex::open(&dir), Err(IndexError::NotFound { .. })));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("meta.json"), "{}").unwrap();
        assert!(
            matches!(TextIndex::open(&dir), Err(IndexError::NotFound { .. })),
            "foreign directory"
        );
        fs::remove_dir_all(&dir).unwrap();

        let mut index = TextIndex::create(&dir, TextIndexConfig::default()).unwrap();
        index.add(&[(1, "some text to index"), (2, "more text")]).unwrap();
        index.commit().unwrap();
        drop(index);
        let config = fs::read(dir.join(CONFIG_FILE)).unwrap();
        let meta = fs::read(dir.join(TANTIVY_DIR).join("meta.json")).unwrap();

        fs::write(dir.join(CONFIG_FILE), b"not a config").unwrap();
        assert!(
            matches!(TextIndex::open(&dir), Err(IndexError::Corrupt { .. })),
            "garbage config"
        );
        fs::write(dir.join(CONFIG_FILE), &config).unwrap();

        fs::write(dir.join(TANTIVY_DIR).join("meta.json"), b"{ not json").unwrap();
        assert!(
            matches!(TextIndex::open(&dir), Err(IndexError::Corrupt { .. })),
            "garbage meta.json"
        );
        fs::write(dir.join(TANTIVY_DIR).join("meta.json"), &meta).unwrap();
        assert!(TextIndex::open(&dir).is_ok());

        let segment_file = fs::read_dir(dir.join(TANTIVY_DIR))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "idx"))
            .expect("a postings file");
        let mut bytes = fs::read(&segment_file).unwrap();
        bytes[0] ^= 0xff;
        fs::write(&segment_file, &bytes).unwrap();
        assert!(
            matches!(TextIndex::open(&dir), Err(IndexError::Corrupt { .. })),
            "bit-flipped segment"
        );

        fs::remove_dir_all(dir.join(TANTIVY_DIR)).unwrap();
        assert!(
            matches!(TextIndex::open(&dir), Err(IndexError::Corrupt { .. })),
            "tantivy directory gone"
        );

        // An interrupted create (tantivy files, no config) is not silently overwritten.
        fs::remove_file(dir.join(CONFIG_FILE)).unwrap();
        fs::create_dir_all(dir.join(TANTIVY_DIR)).unwrap();
        let err = TextIndex::create(&dir, TextIndexConfig::default()).unwrap_err();
        assert!(
            matches!(&err, IndexError::InvalidParameter(m) if m.contains("incomplete")),
            "{err}"
        );
        fs::remove_dir_all(&dir).ok();
    }
}
