//! `sieve.Collection`: the embedded database, over [`sieve_engine::Collection`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::{PyFileNotFoundError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyType};
use pythonize::{depythonize, pythonize};
use serde_json::Value;
use sieve_engine::{
    Collection as Engine, CollectionConfig, DEFAULT_DENSE_MODEL, DEFAULT_RERANKER, DEFAULT_SPARSE_MODEL, Document,
    Durability, Filter, Fusion, Progress, Rerank, Retriever, SyncEvent, SyncOptions, WriteReport,
};

use crate::arrays::{self, Texts};
use crate::{device, errors};

/// A persistent, searchable set of documents in one directory: dense (HNSW), sparse (SPLADE)
/// and BM25 indexes over one store, hybrid search with score fusion and a cross-encoder
/// rerank stage. Documents are encoded on the way in.
///
/// Open it with :meth:`Collection.create` or :meth:`Collection.open`; use it as a context
/// manager (or call :meth:`close`) to release its directory. Methods release the GIL, so
/// threads can search while another adds.
///
/// >>> from sieve import Collection
/// >>> with Collection.create("notes.sieve") as notes:
/// ...     report = notes.add(["1", "2"], ["Lamb chops with rosemary", "Quarterly tax deadlines"],
/// ...                        metadatas=[{"kind": "recipe"}, {"kind": "finance"}])
/// ...     hits = notes.search("what to cook tonight", filter={"kind": "recipe"})
/// ...     hits[0]["id"]
/// '1'
#[pyclass(module = "sieve", frozen)]
pub struct Collection {
    inner: Mutex<Option<Arc<Engine>>>,
    path: PathBuf,
}

#[pymethods]
impl Collection {
    /// Creates a collection in the directory ``path`` (new, or empty) and loads its models.
    ///
    /// ``dense``, ``sparse`` and ``reranker`` name the models (hub ids or folders; ``None``
    /// leaves that part out), ``text`` keeps a BM25 index. ``truncate_dim`` stores shorter
    /// dense vectors (Matryoshka models), ``durability="buffered"`` acknowledges writes before
    /// they reach the disk (a crash can lose the last half second, never corrupt), ``dtype``
    /// fixes the encoders' arithmetic (``"float32"`` or ``"int8"``).
    #[classmethod]
    #[pyo3(signature = (
        path, *, dense=Some(DEFAULT_DENSE_MODEL.to_string()), sparse=Some(DEFAULT_SPARSE_MODEL.to_string()),
        text=true, reranker=Some(DEFAULT_RERANKER.to_string()), truncate_dim=None, durability="flush",
        batch_size=32, device=None, dtype=None
    ), text_signature = "($cls, path, *, dense=\"sentence-transformers/all-MiniLM-L6-v2\", \
        sparse=\"rasyosef/splade-tiny\", text=True, reranker=\"sieve/scifact-minilm-l6-reranker\", \
        truncate_dim=None, durability=\"flush\", batch_size=32, device=None, dtype=None)")]
    #[allow(clippy::too_many_arguments)]
    fn create(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        path: PathBuf,
        dense: Option<String>,
        sparse: Option<String>,
        text: bool,
        reranker: Option<String>,
        truncate_dim: Option<usize>,
        durability: &str,
        batch_size: usize,
        device: Option<&str>,
        dtype: Option<&str>,
    ) -> PyResult<Self> {
        let durability = match durability {
            "flush" => Durability::Flush,
            "buffered" => Durability::Buffered,
            other => {
                return Err(errors::value(format!(
                    "durability must be \"flush\" or \"buffered\", not {other:?}"
                )));
            }
        };
        let config = CollectionConfig {
            dense,
            sparse,
            text,
            reranker,
            truncate_dim,
            durability,
            batch_size,
            ..CollectionConfig::default()
        };
        let options = device::load_options(device, dtype)?;
        let engine = py
            .detach(|| Engine::create_with(&path, config, &options))
            .map_err(errors::engine)?;
        Ok(Self::wrap(engine, path))
    }

    /// Opens the collection in ``path`` (made by Python, the ``sieve`` CLI or Rust) with the
    /// models it was created with. ``FileNotFoundError`` when there is none.
    #[classmethod]
    #[pyo3(signature = (path, *, device=None, dtype=None))]
    fn open(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        path: PathBuf,
        device: Option<&str>,
        dtype: Option<&str>,
    ) -> PyResult<Self> {
        if !path.exists() {
            return Err(PyFileNotFoundError::new_err(format!(
                "no collection at {}",
                path.display()
            )));
        }
        let engine = match (device, dtype) {
            (None, None) => py.detach(|| Engine::open(&path)),
            _ => {
                let options = device::load_options(device, dtype)?;
                py.detach(|| Engine::open_with(&path, &options))
            }
        }
        .map_err(errors::engine)?;
        Ok(Self::wrap(engine, path))
    }

    /// Adds documents: ``ids`` and ``texts`` (lists of ``str``, or one ``str`` each),
    /// ``metadatas`` (a dict, or ``None``, per document) and ``embeddings`` (a float32 array of
    /// shape ``(n, dim)`` used instead of encoding the texts with the dense model). An id that
    /// is already stored raises ``ValueError`` (use :meth:`upsert`); nothing of the call is
    /// written then. Returns ``{"added": n, "replaced": 0, "stale": []}`` once durable.
    #[pyo3(signature = (ids, texts, metadatas=None, embeddings=None, *, show_progress_bar=false))]
    fn add<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
        texts: &Bound<'py, PyAny>,
        metadatas: Option<&Bound<'py, PyAny>>,
        embeddings: Option<&Bound<'py, PyAny>>,
        show_progress_bar: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let docs = documents(ids, texts, metadatas, embeddings)?;
        self.write(py, docs, show_progress_bar, Engine::add_with_progress)
    }

    /// :meth:`add`, replacing documents whose id is already stored.
    #[pyo3(signature = (ids, texts, metadatas=None, embeddings=None, *, show_progress_bar=false))]
    fn upsert<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
        texts: &Bound<'py, PyAny>,
        metadatas: Option<&Bound<'py, PyAny>>,
        embeddings: Option<&Bound<'py, PyAny>>,
        show_progress_bar: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let docs = documents(ids, texts, metadatas, embeddings)?;
        self.write(py, docs, show_progress_bar, Engine::upsert_with_progress)
    }

    /// Deletes the documents with these ids (one ``str`` or a list); returns how many existed.
    fn delete(&self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<usize> {
        let ids = Texts::extract(ids, "ids")?.texts;
        let engine = self.engine()?;
        py.detach(|| engine.delete(&ids)).map_err(errors::engine)
    }

    /// The document stored under ``ids`` as ``{"id", "text", "metadata"}``, or ``None``; for a
    /// list of ids, a list of those (``None`` where an id is not stored).
    fn get<'py>(&self, py: Python<'py>, ids: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let ids = Texts::extract(ids, "ids")?;
        let engine = self.engine()?;
        let docs = py
            .detach(|| ids.texts.iter().map(|id| engine.get(id)).collect::<Result<Vec<_>, _>>())
            .map_err(errors::engine)?;
        let mut out = Vec::with_capacity(docs.len());
        for doc in docs {
            out.push(match doc {
                Some(doc) => document_dict(py, &doc)?.into_any(),
                None => py.None().into_bound(py),
            });
        }
        if ids.single {
            Ok(out.pop().expect("one id"))
        } else {
            Ok(PyList::new(py, out)?.into_any())
        }
    }

    /// The stored vectors of the document ``id`` as ``{"dense": ..., "sparse": ...}``: a float32
    /// array and a one-row sparse matrix (as ``SparseEncoder.encode`` returns), ``None`` where
    /// the collection has no such model; ``None`` for an id that is not stored.
    fn vectors<'py>(&self, py: Python<'py>, id: &str) -> PyResult<Bound<'py, PyAny>> {
        let engine = self.engine()?;
        let Some(vectors) = py.detach(|| engine.vectors(id)).map_err(errors::engine)? else {
            return Ok(py.None().into_bound(py));
        };
        let out = PyDict::new(py);
        match vectors.dense {
            Some(dense) => {
                let n = dense.len();
                out.set_item("dense", arrays::values_to_numpy(py, dense, 1, n, true))?
            }
            None => out.set_item("dense", py.None())?,
        }
        match (vectors.sparse, engine.sparse_model()) {
            (Some(sparse), Some(model)) => {
                let row = sieve_encoders::SparseEmbeddings::new(vec![sparse], model.dim());
                out.set_item("sparse", crate::sparse_encoder::SparseEmbeddings::output(py, row)?)?
            }
            _ => out.set_item("sparse", py.None())?,
        }
        Ok(out.into_any())
    }

    /// Searches the collection: the ``top_k`` best documents for ``query``, best first, as
    /// dicts with ``id``, ``score``, ``text``, ``metadata`` and each ranking's
    /// ``{"rank", "score"}`` (``dense``, ``sparse``, ``bm25``, ``first_stage``, ``reranker``;
    /// ``None`` where a ranking did not find the document).
    ///
    /// - ``mode``: ``"hybrid"`` (every retriever the collection has, fused), ``"dense"``,
    ///   ``"sparse"`` or ``"bm25"``.
    /// - ``filter``: on the metadata, as an expression (``"kind = recipe and year >= 2023"``,
    ///   the CLI's syntax) or a MongoDB-style dict (``{"kind": "recipe", "year": {"$gte": 2023}}``).
    /// - ``rerank``: rerank this many first-stage hits with the cross-encoder (0: none;
    ///   default 20 when the collection has a reranker). ``rerank_mode``: ``"fuse"`` (the
    ///   reranker's ranking fused with the first stage's, weight ``rerank_weight``) or
    ///   ``"replace"`` (the reranker's order alone).
    /// - ``fusion``: how a hybrid search fuses its retrievers: ``"minmax"`` (the default, as in
    ///   the Rust API and the CLI; best on SciFact), ``"rrf"`` or ``"dbsf"``.
    /// - ``diversity`` (0 to 1): maximal marginal relevance over the hits.
    #[pyo3(signature = (
        query, mode="hybrid", top_k=10, filter=None, rerank=None, rerank_mode="fuse", fusion="minmax",
        *, rerank_weight=0.75, diversity=None, keep_duplicates=false
    ))]
    #[allow(clippy::too_many_arguments)]
    fn search<'py>(
        &self,
        py: Python<'py>,
        query: String,
        mode: &str,
        top_k: usize,
        filter: Option<&Bound<'py, PyAny>>,
        rerank: Option<usize>,
        rerank_mode: &str,
        fusion: &str,
        rerank_weight: f32,
        diversity: Option<f32>,
        keep_duplicates: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let filter = filter.filter(|f| !f.is_none()).map(parse_filter).transpose()?;
        let fusion = match fusion {
            "minmax" => Fusion::MinMax,
            "rrf" => Fusion::Rrf { k: 60.0 },
            "dbsf" => Fusion::Dbsf,
            other => {
                return Err(errors::value(format!(
                    "fusion must be \"minmax\", \"rrf\" or \"dbsf\", not {other:?}"
                )));
            }
        };
        let rerank_mode = match rerank_mode {
            "fuse" => Rerank::Fuse { weight: rerank_weight },
            "replace" => Rerank::Replace,
            other => {
                return Err(errors::value(format!(
                    "rerank_mode must be \"fuse\" or \"replace\", not {other:?}"
                )));
            }
        };
        let retriever = match mode {
            "hybrid" => None,
            name => Some(Retriever::from_name(name).ok_or_else(|| {
                errors::value(format!(
                    "mode must be \"hybrid\", \"dense\", \"sparse\" or \"bm25\", not {name:?}"
                ))
            })?),
        };
        let engine = self.engine()?;
        let hits = py
            .detach(|| {
                let search = engine
                    .search(query)
                    .top_k(top_k)
                    .fusion(fusion)
                    .rerank_mode(rerank_mode);
                let mut search = match retriever {
                    Some(retriever) => search.retrievers(&[retriever]),
                    None => search.hybrid(),
                };
                search = match rerank {
                    Some(0) => search.no_rerank(),
                    Some(n) => search.rerank(n),
                    None => search,
                };
                if let Some(filter) = filter {
                    search = search.filter(filter);
                }
                if let Some(diversity) = diversity {
                    search = search.diversity(diversity);
                }
                if keep_duplicates {
                    search = search.keep_duplicates();
                }
                search.run()
            })
            .map_err(errors::engine)?;
        let out = PyList::empty(py);
        for hit in &hits {
            out.append(pythonize(py, hit)?)?;
        }
        Ok(out)
    }

    /// Indexes folders and files of documents as ``sieve index`` does, re-encoding only what
    /// changed: ``.txt``, ``.md``, ``.rst`` and ``.html`` files are cut into chunks that fit the
    /// dense model, each a document with id ``<relative path>#<chunk>`` and metadata ``path``,
    /// ``chunk``, ``title``, ``byte_start``, ``byte_end`` and ``hash``. Files indexed before that
    /// are no longer found (or now excluded) are removed. ``glob`` keeps only matching relative
    /// paths (``"*.md"``), ``exclude`` leaves matching ones out. Returns the report as a dict
    /// (files new / changed / unchanged / removed / skipped, chunks written / deleted, ...).
    #[pyo3(signature = (paths, *, glob=None, exclude=Vec::new(), show_progress_bar=false))]
    fn sync_folder<'py>(
        &self,
        py: Python<'py>,
        paths: &Bound<'py, PyAny>,
        glob: Option<String>,
        exclude: Vec<String>,
        show_progress_bar: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let paths: Vec<PathBuf> = match paths.extract::<PathBuf>() {
            Ok(path) => vec![path],
            Err(_) => paths.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "paths must be a path or a list of paths, not {}",
                    arrays::type_name(paths)
                ))
            })?,
        };
        let mut options = SyncOptions::new(paths);
        if let Some(glob) = glob {
            options = options.glob(&glob).map_err(errors::engine)?;
        }
        for pattern in &exclude {
            options = options.exclude(pattern).map_err(errors::engine)?;
        }
        let engine = self.engine()?;
        let report = py
            .detach(|| {
                let bar = show_progress_bar.then(|| progress_bar("chunks"));
                let report = engine.sync_folder(&options, &mut |event| match (&bar, event) {
                    (Some(bar), SyncEvent::Batch { documents }) => {
                        bar.set_length(documents as u64);
                        bar.set_position(0);
                    }
                    (Some(bar), SyncEvent::Progress(p)) => {
                        bar.set_message(p.stage);
                        bar.set_position(p.done as u64);
                    }
                    (Some(bar), SyncEvent::Skipped(skipped)) => bar.println(format!("skipped: {skipped}")),
                    _ => {}
                });
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                report
            })
            .map_err(errors::engine)?;
        Ok(pythonize(py, &report)?)
    }

    /// The configuration, document and index counts, size on disk and the like, as a dict.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let engine = self.engine()?;
        let info = py.detach(|| engine.info()).map_err(errors::engine)?;
        Ok(pythonize(py, &info)?)
    }

    /// Saves the indexes and flushes the store, so that the next open starts fast.
    fn checkpoint(&self, py: Python<'_>) -> PyResult<()> {
        let engine = self.engine()?;
        py.detach(|| engine.checkpoint()).map_err(errors::engine)
    }

    /// Checkpoints and closes the collection, releasing its directory; later calls raise
    /// ``ValueError``. Closing twice is harmless. Calls still running in other threads finish
    /// first; the directory is released when the last of them returns.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let Some(engine) = self.lock().take() else {
            return Ok(());
        };
        match Arc::try_unwrap(engine) {
            Ok(engine) => py.detach(|| engine.close()).map_err(errors::engine),
            Err(shared) => {
                drop(shared);
                Ok(())
            }
        }
    }

    /// Whether :meth:`close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.lock().is_none()
    }

    /// The collection's directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self.engine()?.len())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        match &*self.lock() {
            Some(engine) => format!(
                "Collection({:?}, documents={})",
                self.path.display().to_string(),
                engine.len()
            ),
            None => format!("Collection({:?}, closed)", self.path.display().to_string()),
        }
    }
}

impl Collection {
    fn wrap(engine: Engine, path: PathBuf) -> Self {
        Self {
            inner: Mutex::new(Some(Arc::new(engine))),
            path,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<Engine>>> {
        // A panic while the lock was held cannot leave the Option half-written.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `add` or `upsert` without the GIL, with a progress bar when asked; the report as a dict.
    fn write<'py>(
        &self,
        py: Python<'py>,
        docs: Vec<Document>,
        show_progress_bar: bool,
        write: WriteFn,
    ) -> PyResult<Bound<'py, PyDict>> {
        let engine = self.engine()?;
        let report = py
            .detach(|| with_progress(show_progress_bar, |progress| write(&engine, docs, progress)))
            .map_err(errors::engine)?;
        let out = PyDict::new(py);
        out.set_item("added", report.added)?;
        out.set_item("replaced", report.replaced)?;
        out.set_item("stale", report.stale.iter().map(|r| r.name()).collect::<Vec<_>>())?;
        Ok(out)
    }

    /// The open collection, shared for one call; `ValueError` once closed.
    fn engine(&self) -> PyResult<Arc<Engine>> {
        self.lock()
            .clone()
            .ok_or_else(|| errors::value(format!("the collection {} is closed", self.path.display())))
    }
}

/// [`Engine::add_with_progress`] or [`Engine::upsert_with_progress`].
type WriteFn = fn(&Engine, Vec<Document>, &mut dyn FnMut(Progress)) -> sieve_engine::Result<WriteReport>;

/// A filter expression (`str`) or a MongoDB-style `dict`.
fn parse_filter(filter: &Bound<'_, PyAny>) -> PyResult<Filter> {
    if let Ok(expr) = filter.cast::<PyString>() {
        let expr = expr.to_cow()?;
        return expr
            .parse::<Filter>()
            .map_err(|e| errors::value(format!("invalid filter {expr:?} {e}")));
    }
    if filter.is_instance_of::<PyDict>() {
        let value: Value = depythonize(filter)?;
        return Filter::from_json(&value).map_err(|e| errors::value(format!("invalid {e}")));
    }
    Err(PyTypeError::new_err(format!(
        "filter must be a str expression or a dict, not {}",
        arrays::type_name(filter)
    )))
}

/// The documents of an `add` / `upsert` call.
fn documents(
    ids: &Bound<'_, PyAny>,
    texts: &Bound<'_, PyAny>,
    metadatas: Option<&Bound<'_, PyAny>>,
    embeddings: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<Document>> {
    let ids = Texts::extract(ids, "ids")?;
    let texts = Texts::extract(texts, "texts")?.texts;
    let n = ids.texts.len();
    if texts.len() != n {
        return Err(errors::value(format!("{n} ids but {} texts", texts.len())));
    }
    let metadatas: Vec<Option<Value>> = match metadatas.filter(|m| !m.is_none()) {
        None => vec![None; n],
        Some(m) if ids.single && m.is_instance_of::<PyDict>() => vec![Some(depythonize(m)?)],
        Some(m) => {
            let list: Vec<Bound<'_, PyAny>> = m.try_iter()?.collect::<PyResult<_>>()?;
            if list.len() != n {
                return Err(errors::value(format!("{n} ids but {} metadatas", list.len())));
            }
            list.iter()
                .enumerate()
                .map(|(i, m)| {
                    if m.is_none() {
                        Ok(None)
                    } else if m.is_instance_of::<PyDict>() {
                        Ok(Some(depythonize(m)?))
                    } else {
                        Err(PyTypeError::new_err(format!(
                            "metadatas[{i}] must be a dict or None, not {}",
                            arrays::type_name(m)
                        )))
                    }
                })
                .collect::<PyResult<_>>()?
        }
    };
    let embeddings = match embeddings.filter(|e| !e.is_none()) {
        None => None,
        Some(e) => {
            let e = arrays::matrix(e, "embeddings")?;
            if e.len() != n {
                return Err(errors::value(format!("{n} ids but {} embeddings", e.len())));
            }
            Some(e)
        }
    };
    Ok(ids
        .texts
        .into_iter()
        .zip(texts)
        .zip(metadatas)
        .enumerate()
        .map(|(i, ((id, text), metadata))| {
            let mut doc = Document::new(id, text);
            if let Some(metadata) = metadata {
                doc = doc.with_metadata(metadata);
            }
            match &embeddings {
                Some(e) => doc.with_dense(e.row(i).to_vec()),
                None => doc,
            }
        })
        .collect())
}

fn document_dict<'py>(py: Python<'py>, doc: &Document) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("id", &doc.id)?;
    out.set_item("text", &doc.text)?;
    out.set_item("metadata", pythonize(py, &doc.metadata)?)?;
    Ok(out)
}

/// Runs `write` with a progress callback that draws a bar on stderr when `show` is set.
fn with_progress<T>(show: bool, write: impl FnOnce(&mut dyn FnMut(Progress)) -> T) -> T {
    if !show {
        return write(&mut |_| {});
    }
    let bar = progress_bar("docs");
    let out = write(&mut |p: Progress| {
        bar.set_length(p.total as u64);
        bar.set_message(p.stage);
        bar.set_position(p.done as u64);
    });
    bar.finish_and_clear();
    out
}

/// A bar on stderr: the stage, the bar, done/total `unit`, elapsed time.
fn progress_bar(unit: &str) -> indicatif::ProgressBar {
    let template = format!("{{msg:>8}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{elapsed_precise}}");
    indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(&template)
            .expect("a valid template")
            .progress_chars("=> "),
    )
}
