//! [`Collection`]: documents in a directory, encoded on the way in, searchable by dense,
//! sparse and BM25 retrieval, fused and reranked.

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sieve_encoders::{
    CrossEncoder, Device, Dtype, LoadOptions, SentenceTransformer, SimilarityFn, SparseEncoder, SparseVector,
};
use sieve_index::{DocId, Metric};

use crate::config::CollectionConfig;
use crate::document::Document;
use crate::error::{EngineError, Result};
use crate::indexes::Indexes;
pub use crate::ingest::Progress;
use crate::models::Models;
use crate::retrievers::Retriever;
use crate::search::{Parts, Search};
use crate::storage::{SledStorage, Storage};
use crate::store::{DocRecord, Put, SCHEMA_VERSION, Schema, Store};

/// Turns the sled store into the [`Storage`] a collection uses (the identity, but for tests).
pub(crate) type WrapStorage = dyn Fn(SledStorage) -> Box<dyn Storage>;

/// File that marks a directory as a sieve collection.
const MARKER: &str = "SIEVE_COLLECTION";
const LOCK: &str = "LOCK";
const STORE_DIR: &str = "store";
const INDEX_DIR: &str = "indexes";
/// Indexes are saved once this many documents changed since the last save.
const CHECKPOINT_EVERY: usize = 20_000;

/// What an [`add`](Collection::add) or [`upsert`](Collection::upsert) did: how many documents
/// it added and how many it replaced ([`delete`](Collection::delete) returns its own count).
///
/// ```
/// use sieve_engine::{Collection, CollectionConfig, Document};
///
/// let dir = std::env::temp_dir().join(format!("sieve-doc-report-{}", std::process::id()));
/// let bm25_only = CollectionConfig { dense: None, sparse: None, reranker: None, ..Default::default() };
/// let collection = Collection::create(&dir, bm25_only)?;
/// collection.add(vec![Document::new("1", "first")])?;
/// let report = collection.upsert(vec![Document::new("1", "first, edited"), Document::new("2", "second")])?;
/// assert_eq!((report.added, report.replaced), (1, 1));
/// # drop(collection);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), sieve_engine::EngineError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// New documents.
    pub added: usize,
    /// Existing documents replaced.
    pub replaced: usize,
    /// Indexes that did not apply this write (a disk or index failure after the store had it,
    /// in this write or an earlier one). The write is durable all the same: the store is the source of truth, and these
    /// indexes are caught up or rebuilt from it on the next open. Until then they miss it.
    pub stale: Vec<Retriever>,
}

/// A collection's vital signs, from [`Collection::info`].
///
/// ```
/// use sieve_engine::{Collection, CollectionConfig, Document};
///
/// let dir = std::env::temp_dir().join(format!("sieve-doc-info-{}", std::process::id()));
/// let bm25_only = CollectionConfig { dense: None, sparse: None, reranker: None, ..Default::default() };
/// let collection = Collection::create(&dir, bm25_only)?;
/// collection.add(vec![Document::new("1", "first")])?;
/// let info = collection.info()?;
/// assert_eq!((info.documents, info.text, info.dense), (1, Some(1), None)); // no dense index here
/// # drop(collection);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), sieve_engine::EngineError>(())
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Info {
    /// The configuration it was created with.
    pub config: CollectionConfig,
    /// Documents in the store.
    pub documents: usize,
    /// Documents in the dense index (equals `documents` when healthy).
    pub dense: Option<usize>,
    /// Documents in the sparse index.
    pub sparse: Option<usize>,
    /// Documents in the BM25 index.
    pub text: Option<usize>,
    /// Indexes that missed writes after a failure (see [`WriteReport::stale`]); rebuilt on the
    /// next open.
    pub stale: Vec<Retriever>,
    /// The arithmetic the documents were encoded in (fixed at creation, see
    /// [`LoadOptions::dtype`]); queries use it too unless opened otherwise.
    pub dtype: Dtype,
    /// Sequence number of the last write.
    pub sequence: u64,
    /// Bytes on disk.
    pub size_on_disk: u64,
}

/// A document's stored vectors, from [`Collection::vectors`].
///
/// ```no_run
/// # let collection = sieve_engine::Collection::open("docs.sieve")?;
/// use sieve_engine::StoredVectors;
///
/// if let Some(StoredVectors { dense, sparse }) = collection.vectors("1")? {
///     println!("{:?} dims, {:?} active terms", dense.map(|v| v.len()), sparse.map(|v| v.nnz()));
/// }
/// # Ok::<(), sieve_engine::EngineError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVectors {
    /// Dense embedding, when the collection has a dense model.
    pub dense: Option<Vec<f32>>,
    /// Sparse embedding, when the collection has a sparse model.
    pub sparse: Option<SparseVector>,
}

struct Writer {
    next_id: u32,
    changed_since_checkpoint: usize,
}

/// A persistent, searchable set of documents in one directory.
///
/// The sled store under `path/store` is the source of truth; the indexes under
/// `path/indexes` are saved at checkpoints and caught up from the store's change log (or
/// rebuilt) when a collection is opened. `Collection` is `Send + Sync`: share it with an
/// `Arc` and search from many threads while one writes.
///
/// ```no_run
/// use sieve_engine::{Collection, CollectionConfig, Document};
/// use serde_json::json;
///
/// let collection = Collection::create("my-collection", CollectionConfig::default())?;
/// collection.add(vec![
///     Document::new("a", "The cat sits outside").with_metadata(json!({"lang": "en"})),
///     Document::new("b", "A man is playing guitar"),
/// ])?;
/// for hit in collection.search("pets outdoors").top_k(1).run()? {
///     println!("{} {:.3} {}", hit.id, hit.score, hit.text);
/// }
/// # Ok::<(), sieve_engine::EngineError>(())
/// ```
pub struct Collection {
    path: PathBuf,
    pub(crate) schema: Schema,
    pub(crate) store: Store,
    pub(crate) models: Models,
    pub(crate) indexes: Indexes,
    writer: Mutex<Writer>,
    _lock: File,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("path", &self.path)
            .field("config", &self.schema.config)
            .finish()
    }
}

impl Collection {
    /// Creates a collection in `path` (a new or empty directory) and loads its models.
    ///
    /// ```no_run
    /// use sieve_engine::{Collection, CollectionConfig};
    /// let c = Collection::create("docs.sieve", CollectionConfig { reranker: None, ..Default::default() })?;
    /// assert_eq!(c.len(), 0);
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn create(path: impl AsRef<Path>, config: CollectionConfig) -> Result<Self> {
        Self::create_with(path, config, &LoadOptions::default())
    }

    /// [`create`](Self::create) with the models loaded on a chosen device and float type.
    /// Where a collection's models run is not part of it: a collection created on a GPU opens
    /// on the CPU and the other way round.
    ///
    /// ```no_run
    /// use sieve_encoders::{Device, LoadOptions};
    /// use sieve_engine::{Collection, CollectionConfig};
    /// let options = LoadOptions { device: Device::Wgpu, ..LoadOptions::default() };
    /// let c = Collection::create_with("docs.sieve", CollectionConfig::default(), &options)?;
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn create_with(path: impl AsRef<Path>, config: CollectionConfig, options: &LoadOptions) -> Result<Self> {
        Self::create_on(path.as_ref(), config, options, &|sled| Box::new(sled))
    }

    /// [`create_with`](Self::create_with) over the store `wrap` makes of the sled one (tests
    /// wrap it to inject faults).
    pub(crate) fn create_on(
        path: &Path,
        config: CollectionConfig,
        options: &LoadOptions,
        wrap: &WrapStorage,
    ) -> Result<Self> {
        check_creatable(path, false)?;
        if config.dense.is_none() && config.sparse.is_none() && !config.text {
            return Err(EngineError::InvalidInput(
                "a collection needs at least one retriever (dense, sparse or text)".into(),
            ));
        }
        if config.batch_size == 0 {
            return Err(EngineError::InvalidInput("batch_size must be at least 1".into()));
        }
        let config = crate::models::pin(config)?;
        let models = Models::load(&config, options)?;
        let schema = Schema {
            version: SCHEMA_VERSION,
            dense: models
                .dense
                .as_ref()
                .map(|m| (m.embedding_dim(), metric_of(m.similarity_fn()))),
            sparse_dim: models.sparse.as_ref().map(|m| m.dim() as u32),
            config,
            dtype: options.dtype,
        };
        fs::create_dir_all(path).map_err(|e| EngineError::io(path, e))?;
        let lock = lock(path)?;
        // Again under the lock: another process may have created a collection here while the
        // models loaded (it held the lock, or has finished and let it go).
        check_creatable(path, true)?;
        let store = Store::new(wrap(open_storage(path)?), path);
        if store.seq()? != 0 {
            // Never an interrupted `create` (no marker, so never opened, so never written to).
            return Err(EngineError::not_a_collection(
                path,
                format!("its store holds documents but the {MARKER} file is missing"),
            ));
        }
        store.write_schema(&schema)?;
        // The marker is written last: a directory without it holds no usable collection.
        crate::files::write_atomic(
            &path.join(MARKER),
            format!("sieve collection, schema {SCHEMA_VERSION}\n").as_bytes(),
        )?;
        Self::assemble(path, schema, store, models, lock)
    }

    /// Whether `path` holds a collection ([`create`](Self::create) finished there). A folder
    /// where it was interrupted holds none; `create` takes it over.
    ///
    /// ```
    /// use sieve_engine::Collection;
    /// assert!(!Collection::exists("no-such-collection.sieve"));
    /// ```
    pub fn exists(path: impl AsRef<Path>) -> bool {
        path.as_ref().join(MARKER).is_file()
    }

    /// Opens an existing collection: reads its configuration from the store, loads the same
    /// models, and brings every index up to date with the store.
    ///
    /// ```no_run
    /// use sieve_engine::Collection;
    /// let c = Collection::open("docs.sieve")?;
    /// println!("{} documents", c.len());
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_on(path, Device::Cpu)
    }

    /// [`open`](Self::open) with the models on `device`, in the precision the collection's
    /// documents were encoded in (f32, or int8 / bf16 if it was created so).
    ///
    /// ```no_run
    /// use sieve_encoders::Device;
    /// use sieve_engine::Collection;
    /// let c = Collection::open_on("docs.sieve", Device::from_env()?)?;
    /// println!("queries in {}", c.info()?.dtype);
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn open_on(path: impl AsRef<Path>, device: Device) -> Result<Self> {
        let options = |schema: &Schema| LoadOptions {
            device,
            dtype: schema.dtype,
        };
        Self::open_inner(path.as_ref(), &options, &|sled| Box::new(sled))
    }

    /// [`open`](Self::open) with the models loaded on a chosen device and precision (for
    /// example [`LoadOptions::from_env`], which reads `SIEVE_DEVICE` and `SIEVE_DTYPE`).
    /// A precision other than the one the documents were encoded in serves searches, but
    /// writes are refused: a collection's vectors all come from one arithmetic.
    ///
    /// ```no_run
    /// use sieve_encoders::LoadOptions;
    /// use sieve_engine::Collection;
    /// let c = Collection::open_with("docs.sieve", &LoadOptions::from_env()?)?;
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn open_with(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Self> {
        Self::open_inner(path.as_ref(), &|_| options.clone(), &|sled| Box::new(sled))
    }

    /// Opens with the load options `options` picks from the schema, over the store `wrap` makes.
    pub(crate) fn open_inner(
        path: &Path,
        options: &dyn Fn(&Schema) -> LoadOptions,
        wrap: &WrapStorage,
    ) -> Result<Self> {
        if !path.is_dir() {
            return Err(EngineError::not_a_collection(path, "no such directory"));
        }
        if !path.join(MARKER).is_file() {
            return Err(EngineError::not_a_collection(
                path,
                format!("no {MARKER} file: not created by sieve"),
            ));
        }
        let lock = lock(path)?;
        if !path.join(STORE_DIR).is_dir() {
            return Err(EngineError::not_a_collection(path, "the store directory is missing"));
        }
        let store = Store::new(wrap(open_storage(path)?), path);
        let schema = store
            .schema()?
            .ok_or_else(|| EngineError::not_a_collection(path, "the store holds no schema"))?;
        let models = Models::load(&schema.config, &options(&schema))?;
        if let (Some(model), Some((expected, _))) = (&models.dense, schema.dense)
            && model.embedding_dim() != expected
        {
            let name = schema.config.dense.clone().unwrap_or_default();
            return Err(EngineError::DimensionChanged {
                model: name,
                expected,
                found: model.embedding_dim(),
            });
        }
        if let (Some(model), Some(expected)) = (&models.sparse, schema.sparse_dim)
            && model.dim() != expected as usize
        {
            let name = schema.config.sparse.clone().unwrap_or_default();
            return Err(EngineError::DimensionChanged {
                model: name,
                expected: expected as usize,
                found: model.dim(),
            });
        }
        Self::assemble(path, schema, store, models, lock)
    }

    fn assemble(path: &Path, schema: Schema, store: Store, models: Models, lock: File) -> Result<Self> {
        let next_id = store.next_id()?;
        let (indexes, redone) = Indexes::open(&path.join(INDEX_DIR), &schema, &store)?;
        let collection = Collection {
            path: path.to_path_buf(),
            schema,
            store,
            models,
            indexes,
            writer: Mutex::new(Writer {
                next_id,
                changed_since_checkpoint: 0,
            }),
            _lock: lock,
        };
        if redone {
            // Save what the catch-up or rebuild did, so the next open does not redo it. Best
            // effort: the indexes in memory are current either way, and a failed save is
            // redone by the next open.
            let _ = collection.checkpoint();
        }
        Ok(collection)
    }

    /// The directory the collection lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration the collection was created with.
    pub fn config(&self) -> &CollectionConfig {
        &self.schema.config
    }

    /// The bi-encoder that encodes documents and queries for dense retrieval, when configured:
    /// the loaded model itself, so a caller needing its tokenizer or `encode` loads nothing twice.
    ///
    /// ```no_run
    /// # let c = sieve_engine::Collection::open("docs.sieve")?;
    /// if let Some(model) = c.dense_model() {
    ///     println!("{} tokens at most", model.max_seq_length());
    /// }
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn dense_model(&self) -> Option<&SentenceTransformer> {
        self.models.dense.as_ref()
    }

    /// `query` embedded as the dense retriever embeds it (the model's query prompt, unit length
    /// after a `truncate_dim` cut), to score stored vectors ([`vectors`](Self::vectors)) the way
    /// a dense search does; [`EngineError::RetrieverMissing`] without a dense model.
    ///
    /// ```no_run
    /// # let c = sieve_engine::Collection::open("docs.sieve")?;
    /// let query = c.dense_query_embedding("why do tides happen")?;
    /// if let (Some(model), Some(stored)) = (c.dense_model(), c.vectors("tides")?.and_then(|v| v.dense)) {
    ///     println!("{:.3}", model.similarity_fn().pair(&query, &stored));
    /// }
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn dense_query_embedding(&self, query: &str) -> Result<Vec<f32>> {
        crate::retrievers::dense::query_embedding(&self.models, query)
    }

    /// The SPLADE model of sparse retrieval, when configured.
    ///
    /// ```no_run
    /// # let c = sieve_engine::Collection::open("docs.sieve")?;
    /// let max_tokens = c.sparse_model().map(|m| m.max_seq_length());
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn sparse_model(&self) -> Option<&SparseEncoder> {
        self.models.sparse.as_ref()
    }

    /// The cross-encoder of the rerank stage, when configured.
    ///
    /// ```no_run
    /// # let c = sieve_engine::Collection::open("docs.sieve")?;
    /// if let Some(reranker) = c.reranker() {
    ///     let scores = reranker.predict(&[("what causes tides", "The moon's gravity.")])?;
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reranker(&self) -> Option<&CrossEncoder> {
        self.models.reranker.as_ref()
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.indexes.read().metadata.len()
    }

    /// Whether the collection holds no document.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Document counts per index, the last write's sequence and the size on disk.
    ///
    /// ```no_run
    /// # let c = sieve_engine::Collection::open("docs.sieve")?;
    /// let info = c.info()?;
    /// println!("{} documents, {} bytes", info.documents, info.size_on_disk);
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn info(&self) -> Result<Info> {
        let names: Vec<&str> = crate::retrievers::KINDS.iter().map(|k| k.name).collect();
        self.indexes.sync(&self.store, &names)?;
        let state = self.indexes.read();
        let len = |r: Retriever| state.slot(r.name()).map(|s| s.index.len());
        Ok(Info {
            config: self.schema.config.clone(),
            documents: state.metadata.len(),
            dense: len(Retriever::Dense),
            sparse: len(Retriever::Sparse),
            text: len(Retriever::Bm25),
            stale: state.stale(),
            dtype: self.schema.dtype,
            sequence: self.store.seq()?,
            size_on_disk: dir_size(&self.path),
        })
    }

    /// Bytes the collection uses on disk (store and indexes).
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(dir_size(&self.path))
    }

    /// Adds new documents. Fails, naming it, if an id is already stored or repeated; nothing
    /// is written then. Returns once the documents are durable (see [`Durability`](crate::Durability)).
    ///
    /// ```no_run
    /// # let c = sieve_engine::Collection::open("docs.sieve")?;
    /// use sieve_engine::Document;
    /// c.add(vec![Document::new("1", "first"), Document::new("2", "second")])?;
    /// assert!(c.add(vec![Document::new("1", "again")]).is_err());
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn add(&self, docs: Vec<Document>) -> Result<WriteReport> {
        self.write(docs, false, &mut |_| {})
    }

    /// [`add`](Self::add) with a progress callback (encoding is the slow part of ingest).
    pub fn add_with_progress(&self, docs: Vec<Document>, progress: &mut dyn FnMut(Progress)) -> Result<WriteReport> {
        self.write(docs, false, progress)
    }

    /// Adds documents, replacing those whose id is already stored.
    ///
    /// ```no_run
    /// # let c = sieve_engine::Collection::open("docs.sieve")?;
    /// use sieve_engine::Document;
    /// let report = c.upsert(vec![Document::new("1", "first, edited")])?;
    /// println!("{} replaced", report.replaced);
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn upsert(&self, docs: Vec<Document>) -> Result<WriteReport> {
        self.write(docs, true, &mut |_| {})
    }

    /// [`upsert`](Self::upsert) with a progress callback.
    pub fn upsert_with_progress(&self, docs: Vec<Document>, progress: &mut dyn FnMut(Progress)) -> Result<WriteReport> {
        self.write(docs, true, progress)
    }

    /// Deletes documents by id; unknown ids are ignored. Returns how many were deleted.
    ///
    /// ```no_run
    /// # let c = sieve_engine::Collection::open("docs.sieve")?;
    /// let deleted = c.delete(&["1", "no-such-id"])?;
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn delete<S: AsRef<str>>(&self, ids: &[S]) -> Result<usize> {
        let mut writer = self.writer()?;
        let mut removed = Vec::new();
        let mut seen = HashSet::new();
        for id in ids {
            let id = id.as_ref();
            if !seen.insert(id) {
                continue;
            }
            if let Some(iid) = self.store.iid(id)? {
                removed.push((iid, id.to_string()));
            }
        }
        if removed.is_empty() {
            return Ok(0);
        }
        self.store.commit(&[], &removed, writer.next_id)?;
        let iids: Vec<DocId> = removed.iter().map(|r| r.0).collect();
        {
            // The store holds the deletion: an index that fails goes stale instead.
            let mut state = self.indexes.write();
            crate::indexes::remove(&mut state, &iids);
        }
        writer.changed_since_checkpoint += removed.len();
        self.make_durable()?;
        self.maybe_checkpoint(&mut writer)?;
        Ok(removed.len())
    }

    /// The stored document with this id (without vectors).
    ///
    /// ```no_run
    /// # let c = sieve_engine::Collection::open("docs.sieve")?;
    /// if let Some(doc) = c.get("1")? {
    ///     println!("{}", doc.text);
    /// }
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn get(&self, id: &str) -> Result<Option<Document>> {
        let Some(iid) = self.store.iid(id)? else {
            return Ok(None);
        };
        Ok(self.store.record(iid)?.map(DocRecord::into_document))
    }

    /// The stored vectors of a document (`None`: no such document).
    ///
    /// ```no_run
    /// # let c = sieve_engine::Collection::open("docs.sieve")?;
    /// if let Some(v) = c.vectors("1")? {
    ///     println!("{:?} dense dims", v.dense.map(|d| d.len()));
    /// }
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn vectors(&self, id: &str) -> Result<Option<StoredVectors>> {
        let Some(iid) = self.store.iid(id)? else {
            return Ok(None);
        };
        Ok(Some(StoredVectors {
            dense: self.store.dense(iid)?,
            sparse: self.store.sparse(iid)?,
        }))
    }

    /// Every document, in insertion order of first add.
    ///
    /// ```no_run
    /// # let c = sieve_engine::Collection::open("docs.sieve")?;
    /// for doc in c.iter() {
    ///     println!("{}", doc?.id);
    /// }
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = Result<Document>> + '_ {
        self.store.records().map(|r| r.map(|(_, rec)| rec.into_document()))
    }

    /// Starts a search; see [`Search`] for the options.
    ///
    /// ```no_run
    /// # let c = sieve_engine::Collection::open("docs.sieve")?;
    /// use sieve_engine::Filter;
    /// let hits = c.search("how do I reset my password").filter(Filter::eq("lang", "en")).top_k(5).run()?;
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn search(&self, query: impl Into<String>) -> Search<'_> {
        let parts = Parts {
            schema: &self.schema,
            store: &self.store,
            models: &self.models,
            indexes: &self.indexes,
        };
        Search::new(parts, query.into())
    }

    /// Saves every index and trims the store's change log, so the next open has nothing to
    /// catch up. Runs on its own every 20,000 changed documents and when the collection is dropped.
    ///
    /// ```
    /// use sieve_engine::{Collection, CollectionConfig, Document};
    ///
    /// let dir = std::env::temp_dir().join(format!("sieve-doc-checkpoint-{}", std::process::id()));
    /// let bm25_only = CollectionConfig { dense: None, sparse: None, reranker: None, ..Default::default() };
    /// let collection = Collection::create(&dir, bm25_only)?;
    /// collection.add(vec![Document::new("1", "first"), Document::new("2", "second")])?;
    /// collection.checkpoint()?; // after a bulk load: the next open replays nothing
    /// # drop(collection);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn checkpoint(&self) -> Result<()> {
        let mut writer = self.writer()?;
        self.checkpoint_locked(&mut writer)
    }

    /// Checkpoints and closes, reporting any error that dropping would swallow.
    ///
    /// ```
    /// use sieve_engine::{Collection, CollectionConfig, Document};
    ///
    /// let dir = std::env::temp_dir().join(format!("sieve-doc-close-{}", std::process::id()));
    /// let bm25_only = CollectionConfig { dense: None, sparse: None, reranker: None, ..Default::default() };
    /// let collection = Collection::create(&dir, bm25_only)?;
    /// collection.add(vec![Document::new("1", "first")])?;
    /// collection.close()?;
    /// assert_eq!(Collection::open(&dir)?.len(), 1);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn close(self) -> Result<()> {
        self.checkpoint()
    }

    fn checkpoint_locked(&self, writer: &mut Writer) -> Result<()> {
        let seq = self.store.seq()?;
        self.store.flush()?;
        {
            // A failure marks that index stale; the other indexes are still saved.
            let mut state = self.indexes.write();
            let _ = crate::indexes::commit(&mut state);
        }
        let state = self.indexes.read();
        crate::indexes::save(&self.path.join(INDEX_DIR), &state, seq)?;
        drop(state);
        self.store.trim_log(seq)?;
        writer.changed_since_checkpoint = 0;
        Ok(())
    }

    fn maybe_checkpoint(&self, writer: &mut Writer) -> Result<()> {
        if writer.changed_since_checkpoint >= CHECKPOINT_EVERY {
            self.checkpoint_locked(writer)?;
        }
        Ok(())
    }

    /// With [`Durability::Flush`](crate::Durability::Flush): flushes the store (the write is
    /// durable once this returns), then commits the text index, which is never ahead of the
    /// store. A failed flush fails the call: the write is applied (reads and the indexes see
    /// it) but whether it survives a crash is unknown; nothing is half-applied either way.
    fn make_durable(&self) -> Result<()> {
        if self.schema.config.durability != crate::Durability::Flush {
            return Ok(());
        }
        self.store.flush()?;
        let mut state = self.indexes.write();
        // A failed commit marks that index stale; the write is durable all the same.
        let _ = crate::indexes::commit(&mut state);
        Ok(())
    }

    /// The writer's lock, refused once a write has panicked: what that write left in the
    /// indexes is unknown, so writes stop until the collection is reopened (reads go on).
    fn writer(&self) -> Result<std::sync::MutexGuard<'_, Writer>> {
        match self.writer.lock() {
            Ok(writer) if !self.indexes.is_poisoned() => Ok(writer),
            _ => Err(EngineError::Poisoned {
                path: self.path.clone(),
            }),
        }
    }

    /// Refuses to encode documents in another arithmetic than the stored ones were.
    fn check_dtype(&self) -> Result<()> {
        let stored = self.schema.dtype;
        let loaded = [
            self.models.dense.as_ref().map(SentenceTransformer::dtype),
            self.models.sparse.as_ref().map(SparseEncoder::dtype),
        ];
        match loaded.into_iter().flatten().find(|&d| d != stored) {
            Some(found) => Err(EngineError::InvalidInput(format!(
                "this collection's documents are encoded in {stored} and its models were loaded in {found}, which \
                 can search it but not write to it; open it with Collection::open (or SIEVE_DTYPE={stored})"
            ))),
            None => Ok(()),
        }
    }

    fn write(&self, docs: Vec<Document>, replace: bool, progress: &mut dyn FnMut(Progress)) -> Result<WriteReport> {
        if docs.is_empty() {
            return Ok(WriteReport::default());
        }
        self.check_documents(&docs)?;
        self.check_dtype()?;
        let mut writer = self.writer()?;
        // Ids are checked under the writer lock so no other write can slip in between.
        let mut existing = Vec::with_capacity(docs.len());
        for doc in &docs {
            let iid = self.store.iid(&doc.id)?;
            if iid.is_some() && !replace {
                return Err(EngineError::DuplicateId { id: doc.id.clone() });
            }
            existing.push(iid);
        }
        let (dense, sparse) = crate::ingest::encode(&self.models, self.schema.config.batch_size, &docs, progress)?;
        let mut next_id = writer.next_id;
        let mut report = WriteReport::default();
        let mut puts = Vec::with_capacity(docs.len());
        for (((doc, iid), dense), sparse) in docs.into_iter().zip(existing).zip(dense).zip(sparse) {
            let iid = match iid {
                Some(iid) => {
                    report.replaced += 1;
                    iid
                }
                None => {
                    report.added += 1;
                    let iid = next_id;
                    next_id = next_id.checked_add(1).ok_or_else(|| {
                        EngineError::InvalidInput("the collection has used all 2^32 internal ids".into())
                    })?;
                    iid
                }
            };
            let metadata = serde_json::to_string(&doc.metadata)
                .map_err(|e| EngineError::InvalidInput(format!("metadata of {:?}: {e}", doc.id)))?;
            puts.push(Put {
                iid,
                record: DocRecord {
                    id: doc.id,
                    text: doc.text,
                    metadata,
                },
                dense,
                sparse,
            });
        }
        progress(Progress {
            stage: "store",
            done: 0,
            total: puts.len(),
        });
        self.store.commit(&puts, &[], next_id)?;
        writer.next_id = next_id;
        {
            // The store holds the documents: an index that fails goes stale instead.
            let mut state = self.indexes.write();
            crate::indexes::insert(&mut state, &puts);
        }
        writer.changed_since_checkpoint += puts.len();
        self.make_durable()?;
        report.stale = self.indexes.read().stale();
        progress(Progress {
            stage: "store",
            done: puts.len(),
            total: puts.len(),
        });
        self.maybe_checkpoint(&mut writer)?;
        Ok(report)
    }

    fn check_documents(&self, docs: &[Document]) -> Result<()> {
        let mut seen = HashSet::with_capacity(docs.len());
        for doc in docs {
            if doc.id.is_empty() {
                return Err(EngineError::InvalidInput("a document has an empty id".into()));
            }
            if !seen.insert(doc.id.as_str()) {
                return Err(EngineError::RepeatedId { id: doc.id.clone() });
            }
            if let Some(v) = &doc.dense {
                let Some((dim, _)) = self.schema.dense else {
                    return Err(EngineError::InvalidInput(format!(
                        "document {:?} carries a dense vector but the collection has no dense model",
                        doc.id
                    )));
                };
                if v.len() != dim {
                    return Err(EngineError::DimensionMismatch {
                        id: doc.id.clone(),
                        expected: dim,
                        got: v.len(),
                    });
                }
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(EngineError::InvalidInput(format!(
                        "document {:?}: dense vector holds NaN or infinity",
                        doc.id
                    )));
                }
            }
            if let Some(v) = &doc.sparse {
                let Some(dim) = self.schema.sparse_dim else {
                    return Err(EngineError::InvalidInput(format!(
                        "document {:?} carries a sparse vector but the collection has no sparse model",
                        doc.id
                    )));
                };
                let sorted = v.indices.windows(2).all(|w| w[0] < w[1]);
                if v.indices.len() != v.values.len()
                    || !sorted
                    || v.indices.iter().any(|&i| i >= dim)
                    || v.values.iter().any(|x| !x.is_finite() || *x < 0.0)
                {
                    return Err(EngineError::InvalidInput(format!(
                        "document {:?}: sparse vector needs ascending indices below {dim} and as many finite, non-negative values",
                        doc.id
                    )));
                }
            }
        }
        Ok(())
    }
}

impl Drop for Collection {
    fn drop(&mut self) {
        // Best effort: an index that is not saved here is caught up from the store on open.
        // Never while unwinding or after a write panicked: the indexes in memory may be half
        // updated, and the store is what the next open trusts.
        if std::thread::panicking() {
            return;
        }
        let Ok(mut writer) = self.writer() else {
            return;
        };
        if writer.changed_since_checkpoint > 0 {
            let _ = self.checkpoint_locked(&mut writer);
        }
    }
}

fn metric_of(similarity: SimilarityFn) -> Metric {
    match similarity {
        SimilarityFn::Cosine => Metric::Cosine,
        SimilarityFn::Dot => Metric::Dot,
        SimilarityFn::Euclidean => Metric::Euclidean,
        SimilarityFn::Manhattan => Metric::Manhattan,
    }
}

/// `create` may use `path`: it does not exist, or is a directory holding nothing but a lock
/// file (another `create` may have made it a moment ago) and perhaps the store of a `create`
/// that was interrupted before it finished (no marker: never opened, so no documents), which
/// a new `create` takes over. `locked`: the caller holds the lock.
fn check_creatable(path: &Path, locked: bool) -> Result<()> {
    if path.join(MARKER).exists() {
        return Err(EngineError::AlreadyExists {
            path: path.to_path_buf(),
        });
    }
    if !path.exists() {
        return Ok(());
    }
    let entries = fs::read_dir(path).map_err(|e| EngineError::io(path, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::io(path, e))?;
        let interrupted_store = entry.file_name() == STORE_DIR && entry.file_type().is_ok_and(|t| t.is_dir());
        // The marker of a create interrupted while writing it.
        let interrupted_marker = entry.file_name().to_str() == Some(&format!("{MARKER}.tmp"));
        if entry.file_name() != LOCK && !interrupted_store && !interrupted_marker {
            if !locked && path.join(LOCK).exists() {
                // Another process may be creating a collection here right now.
                drop(lock(path)?);
            }
            return Err(EngineError::not_a_collection(
                path,
                "directory is not empty and holds no collection",
            ));
        }
    }
    Ok(())
}

fn lock(path: &Path) -> Result<File> {
    let lock_path = path.join(LOCK);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| EngineError::io(&lock_path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(EngineError::Locked {
            path: path.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(EngineError::io(&lock_path, e)),
    }
}

/// Opens the store; the caller holds the collection's lock.
fn open_storage(path: &Path) -> Result<SledStorage> {
    let store_dir = path.join(STORE_DIR);
    // Holding the collection's lock, a store still locked can only be this process's own,
    // from a collection just dropped whose sled threads are still shutting down: wait for them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        // sled can panic on some damaged files instead of returning an error; contain that.
        let opened = std::panic::catch_unwind(|| SledStorage::open(&store_dir)).unwrap_or_else(|_| {
            Err(EngineError::not_a_collection(
                path,
                "the store is damaged (sled could not read it)",
            ))
        });
        match opened {
            Err(EngineError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
