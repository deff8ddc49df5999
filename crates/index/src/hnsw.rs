//! [`HnswIndex`]: approximate nearest-neighbour search on an **hnsw_rs** graph.
//!
//! The index owns a [`VectorStore`] (exact vectors by slot) next to the graph, which gives it:
//! exact scores for every hit (the graph only ranks candidates), exact search below
//! [`HnswParams::flat_threshold`] documents and for very selective filters, deletes as
//! tombstones with a [`compact`](HnswIndex::compact) that rebuilds the graph without them,
//! and a rebuild from raw vectors whenever the saved graph is missing or damaged.
//!
//! ## On disk
//! `dir/hnsw.manifest` names the current generation `g`; `dir/vectors.g` holds the vectors and
//! `dir/graph-g.hnsw.{graph,data}` hnsw_rs' own dump. A save writes generation `g + 1` in full,
//! then replaces the manifest atomically, then deletes generation `g`: a crash at any point
//! leaves one complete generation that the manifest names.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use hnsw_rs::prelude::{AnnT, Distance, Hnsw, HnswIo};
use serde::{Deserialize, Serialize};

use crate::dense::{DenseIndex, SearchParams};
use crate::error::{IndexError, Result};
use crate::filter::AllowSet;
use crate::hit::{DocId, Hit};
use crate::metric::{self, Metric};
use crate::persist;
use crate::vectors::VectorStore;

const MANIFEST: &str = "hnsw.manifest";
const MANIFEST_MAGIC: &[u8; 8] = b"SIEVHNSW";
const VECTORS_MAGIC: &[u8; 8] = b"SIEVVECS";
const VERSION: u32 = 1;

/// Graph construction and search parameters.
///
/// ```
/// use sieve_index::{HnswIndex, HnswParams, Metric};
///
/// // More links and a wider build list: better recall, slower inserts; and a reproducible graph.
/// let params = HnswParams { m: 32, ef_construction: 400, parallel_insert: false, ..HnswParams::default() };
/// let index = HnswIndex::new(384, Metric::Cosine, params)?;
/// assert_eq!(index.params().m, 32);
/// # Ok::<(), sieve_index::IndexError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Links per node and layer (layer 0 keeps twice as many). 2..=256.
    pub m: usize,
    /// Candidate-list width while building: higher builds slower and finds better links.
    pub ef_construction: usize,
    /// Default candidate-list width while searching (per query: [`SearchParams::ef_search`]).
    pub ef_search: usize,
    /// Below this many documents no graph is built and every search is exact. Filters that
    /// allow at most this many documents are also answered exactly.
    pub flat_threshold: usize,
    /// Insert large batches on all cores. The graph then depends on thread timing; set
    /// `false` for a graph that is identical from run to run.
    pub parallel_insert: bool,
}

/// Below this many tombstones a graph is never compacted on its own.
const COMPACT_MIN_DEAD: usize = 1024;

/// The widest candidate list [`HnswParams`] accept (per query, `ef_search` is also bounded by
/// the index size).
pub const MAX_EF: usize = 100_000;

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 100,
            flat_threshold: 1024,
            parallel_insert: true,
        }
    }
}

impl HnswParams {
    fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(IndexError::InvalidParameter(what));
        if !(2..=256).contains(&self.m) {
            return bad(format!("HNSW m must be in 2..=256, got {}", self.m));
        }
        if !(1..=MAX_EF).contains(&self.ef_construction) || !(1..=MAX_EF).contains(&self.ef_search) {
            return bad(format!(
                "HNSW ef_construction and ef_search must be in 1..={MAX_EF}, got {} and {}",
                self.ef_construction, self.ef_search
            ));
        }
        Ok(())
    }
}

/// Approximate nearest-neighbour index (HNSW) with exact rescoring, deletes and filters.
///
/// ```
/// use sieve_index::{DenseIndex, HnswIndex, HnswParams, Metric, SearchParams};
///
/// let params = HnswParams { flat_threshold: 0, ..HnswParams::default() };
/// let mut index = HnswIndex::new(2, Metric::Cosine, params)?;
/// index.insert(&[(1, &[1.0, 0.0][..]), (2, &[0.0, 1.0][..]), (3, &[0.7, 0.7][..])])?;
/// index.remove(&[1]);
/// let hits = index.search(&[1.0, 0.1], 2, &SearchParams::default(), None)?;
/// assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [3, 2]);
/// # Ok::<(), sieve_index::IndexError>(())
/// ```
pub struct HnswIndex {
    params: HnswParams,
    store: VectorStore,
    graph: Option<Graph>,
    generation: u64,
    loaded_graph: bool,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("params", &self.params)
            .field("dim", &self.store.dim())
            .field("metric", &self.store.metric())
            .field("len", &self.store.len())
            .field("dead", &self.store.dead())
            .field("graph", &self.graph.is_some())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    params: HnswParams,
    dim: usize,
    metric: Metric,
    generation: u64,
    /// CRC-32 and length of each hnsw_rs dump file, or `None` when no graph was built.
    graph: Option<[(u32, u64); 2]>,
}

impl Manifest {
    fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let payload = persist::read_checked(&path, MANIFEST_MAGIC, VERSION)?;
        let (manifest, _) = bincode::serde::decode_from_slice(&payload, bincode::config::standard())
            .map_err(|e| IndexError::corrupt(&path, e.to_string()))?;
        Ok(manifest)
    }

    /// Replaces the manifest atomically: this is the moment a save takes effect.
    fn write(&self, dir: &Path) -> Result<()> {
        let payload = bincode::serde::encode_to_vec(self, bincode::config::standard())
            .map_err(|e| IndexError::InvalidParameter(format!("cannot encode HNSW manifest: {e}")))?;
        persist::write_checked(&dir.join(MANIFEST), MANIFEST_MAGIC, VERSION, &payload)
    }
}

impl HnswIndex {
    /// An empty index of `dim`-dimensional vectors compared with `metric`; out-of-range
    /// `params` are [`IndexError::InvalidParameter`].
    ///
    /// ```
    /// use sieve_index::{HnswIndex, HnswParams, IndexError, Metric};
    ///
    /// let index = HnswIndex::new(384, Metric::Cosine, HnswParams::default())?;
    /// assert!(!index.has_graph()); // built once `flat_threshold` documents are in
    /// let bad = HnswParams { m: 1, ..HnswParams::default() };
    /// assert!(matches!(HnswIndex::new(384, Metric::Cosine, bad), Err(IndexError::InvalidParameter(_))));
    /// # Ok::<(), IndexError>(())
    /// ```
    pub fn new(dim: usize, metric: Metric, params: HnswParams) -> Result<Self> {
        params.validate()?;
        if dim == 0 {
            return Err(IndexError::InvalidParameter("dimension must be at least 1".into()));
        }
        Ok(HnswIndex {
            params,
            store: VectorStore::new(dim, metric),
            graph: None,
            generation: 0,
            loaded_graph: false,
        })
    }

    /// The parameters the index was built with.
    pub fn params(&self) -> &HnswParams {
        &self.params
    }

    /// Documents removed but still in the graph, until the next [`compact`](Self::compact).
    pub fn tombstones(&self) -> usize {
        self.store.dead()
    }

    /// Whether a graph exists (false below `flat_threshold`: searches are exact).
    pub fn has_graph(&self) -> bool {
        self.graph.is_some()
    }

    /// Whether [`load`](Self::load) took the graph from the saved dump (`false`: it was
    /// missing or damaged and was rebuilt from the saved vectors).
    pub fn graph_loaded_from_dump(&self) -> bool {
        self.loaded_graph
    }

    /// Drops tombstones: rebuilds the store and the graph from the live vectors.
    ///
    /// ```
    /// use sieve_index::{DenseIndex, HnswIndex, HnswParams, Metric};
    ///
    /// let mut index = HnswIndex::new(2, Metric::Cosine, HnswParams::default())?;
    /// index.insert(&[(1, &[1.0, 0.0][..]), (2, &[0.0, 1.0][..])])?;
    /// index.remove(&[1]);
    /// assert_eq!(index.tombstones(), 1);
    /// index.compact();
    /// assert_eq!((index.tombstones(), index.len()), (0, 1));
    /// # Ok::<(), sieve_index::IndexError>(())
    /// ```
    pub fn compact(&mut self) {
        self.store = self.store.compacted();
        self.graph = None;
        if self.store.len() >= self.params.flat_threshold.max(1) {
            self.graph = Some(self.build_graph());
        }
    }

    /// Reads an index written by [`DenseIndex::save`]. A missing or damaged graph dump is
    /// rebuilt from the saved vectors; a missing or damaged vector file is an error.
    ///
    /// ```no_run
    /// use sieve_index::{DenseIndex, HnswIndex};
    /// let index = HnswIndex::load(std::path::Path::new("dense-index"))?;
    /// println!("{} vectors", index.len());
    /// # Ok::<(), sieve_index::IndexError>(())
    /// ```
    pub fn load(dir: &Path) -> Result<Self> {
        let manifest = Manifest::read(dir)?;
        manifest.params.validate()?;
        let vectors_path = dir.join(vectors_file(manifest.generation));
        let payload = persist::read_checked(&vectors_path, VECTORS_MAGIC, VERSION)?;
        let store = VectorStore::from_bytes(&payload, &vectors_path)?;
        if store.dim() != manifest.dim || store.metric() != manifest.metric {
            return Err(IndexError::corrupt(&vectors_path, "vectors disagree with the manifest"));
        }
        let mut index = HnswIndex {
            params: manifest.params,
            store,
            graph: None,
            generation: manifest.generation,
            loaded_graph: false,
        };
        if let Some(expected) = manifest.graph {
            index.graph = Graph::load(dir, manifest.generation, manifest.metric, expected, index.store.slots());
            index.loaded_graph = index.graph.is_some();
            if index.graph.is_none() {
                index.graph = Some(index.build_graph());
            }
        }
        Ok(index)
    }

    fn build_graph(&self) -> Graph {
        let graph = Graph::new(self.store.metric(), &self.params, self.store.slots());
        let live: Vec<u32> = (0..self.store.slots() as u32)
            .filter(|&s| self.store.is_live(s))
            .collect();
        graph.insert(&self.store, &live, self.params.parallel_insert);
        graph
    }

    /// Tombstones slow searches down and cost memory and disk; rebuild once they outnumber
    /// the live vectors (so at most about half of the graph is ever dead).
    fn compact_if_mostly_dead(&mut self) {
        if self.store.dead() > COMPACT_MIN_DEAD && self.store.dead() > self.store.len() {
            self.compact();
        }
    }

    fn exact(&self, query: &[f32], k: usize, filter: Option<&AllowSet>) -> Vec<Hit> {
        self.store.exact_search(query, k, filter)
    }
}

impl DenseIndex for HnswIndex {
    fn dim(&self) -> usize {
        self.store.dim()
    }

    fn metric(&self) -> Metric {
        self.store.metric()
    }

    fn insert(&mut self, points: &[(DocId, &[f32])]) -> Result<()> {
        self.store.check(points)?;
        let slots = self.store.push(points);
        match &self.graph {
            Some(graph) => graph.insert(&self.store, &slots, self.params.parallel_insert),
            None if self.store.len() >= self.params.flat_threshold.max(1) => self.graph = Some(self.build_graph()),
            None => {}
        }
        // A replaced vector leaves its old slot behind as a tombstone, as a removal does.
        self.compact_if_mostly_dead();
        Ok(())
    }

    fn remove(&mut self, ids: &[DocId]) -> usize {
        let removed = self.store.remove(ids);
        self.compact_if_mostly_dead();
        removed
    }

    fn search(&self, query: &[f32], k: usize, params: &SearchParams, filter: Option<&AllowSet>) -> Result<Vec<Hit>> {
        let query = self.store.prepare_query(query)?;
        let allowed = match filter {
            Some(allow) => allow.intersection_len(self.store.live_docs()) as usize,
            None => self.store.len(),
        };
        let want = k.min(allowed);
        if want == 0 {
            return Ok(Vec::new());
        }
        let graph = match &self.graph {
            Some(graph) if !params.exact && (filter.is_none() || allowed > self.params.flat_threshold) => graph,
            _ => return Ok(self.exact(&query, k, filter)),
        };
        // Tombstones and filters can leave fewer than `want` hits in the candidate list:
        // widen it until enough survive, and fall back to an exact scan if even that fails.
        // Never wider than the graph: hnsw_rs sizes its lists by ef.
        let slots = self.store.slots();
        let mut ef = params.ef_search.unwrap_or(self.params.ef_search).max(want).min(slots);
        loop {
            let hits = graph.search(&self.store, &query, want, ef, filter);
            if hits.len() >= want {
                return Ok(hits);
            }
            if ef >= slots {
                return Ok(self.exact(&query, k, filter));
            }
            ef = ef.saturating_mul(4).min(slots);
        }
    }

    fn len(&self) -> usize {
        self.store.len()
    }

    fn contains(&self, id: DocId) -> bool {
        self.store.contains(id)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        persist::ensure_dir(dir)?;
        // Read the current generation from disk, not from memory: another index may have
        // been saved here since this one was loaded.
        let previous = read_generation(dir).unwrap_or(self.generation);
        let generation = previous.max(self.generation) + 1;
        persist::write_checked(
            &dir.join(vectors_file(generation)),
            VECTORS_MAGIC,
            VERSION,
            &self.store.to_bytes(),
        )?;
        let graph = match &self.graph {
            Some(graph) => Some(graph.dump(dir, generation)?),
            None => None,
        };
        let manifest = Manifest {
            params: self.params,
            dim: self.store.dim(),
            metric: self.store.metric(),
            generation,
            graph,
        };
        manifest.write(dir)?;
        remove_other_generations(dir, generation);
        Ok(())
    }
}

fn vectors_file(generation: u64) -> String {
    format!("vectors.{generation}")
}

fn graph_basename(generation: u64) -> String {
    format!("graph-{generation}")
}

fn graph_files(generation: u64) -> [String; 2] {
    let base = graph_basename(generation);
    [format!("{base}.hnsw.graph"), format!("{base}.hnsw.data")]
}

fn read_generation(dir: &Path) -> Option<u64> {
    Manifest::read(dir).ok().map(|m| m.generation)
}

fn remove_other_generations(dir: &Path, keep: u64) {
    let keep_names = [
        vectors_file(keep),
        graph_files(keep)[0].clone(),
        graph_files(keep)[1].clone(),
    ];
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with("vectors.") || name.starts_with("graph-");
        if ours && !keep_names.contains(&name) {
            // Best effort: a leftover file is ignored by the next load and removed by the next save.
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn file_crc(path: &Path) -> Option<(u32, u64)> {
    let bytes = fs::read(path).ok()?;
    Some((crc32fast::hash(&bytes), bytes.len() as u64))
}

// --- distances -----------------------------------------------------------------------------
// hnsw_rs asserts distances are >= 0 and only ever compares them, so each metric is mapped to
// a non-negative, order-preserving distance. Scores returned to users are recomputed exactly.

/// Cosine on unit vectors: `1 - dot`, clamped at 0 against rounding.
#[derive(Debug, Clone, Copy, Default)]
struct CosineDistance;
/// Inner product, mapped monotonically onto `(0, inf)`: `1/(1+s)` for `s >= 0`, `1 - s` below.
#[derive(Debug, Clone, Copy, Default)]
struct DotDistance;
/// Squared Euclidean distance (same order as Euclidean, without the square root).
#[derive(Debug, Clone, Copy, Default)]
struct SquaredL2Distance;
/// Manhattan distance.
#[derive(Debug, Clone, Copy, Default)]
struct ManhattanDistance;

fn finite_or_max(d: f32) -> f32 {
    if d.is_nan() { f32::MAX } else { d }
}

impl Distance<f32> for CosineDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        finite_or_max((1.0 - metric::dot(a, b)).max(0.0))
    }
}
impl Distance<f32> for DotDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        let s = metric::dot(a, b);
        finite_or_max(if s >= 0.0 { 1.0 / (1.0 + s) } else { 1.0 - s })
    }
}
impl Distance<f32> for SquaredL2Distance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        finite_or_max(metric::squared_l2(a, b))
    }
}
impl Distance<f32> for ManhattanDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        finite_or_max(metric::l1(a, b))
    }
}

/// The hnsw_rs graph for one metric. Its point ids are store slots.
enum Graph {
    Cosine(Hnsw<'static, f32, CosineDistance>),
    Dot(Hnsw<'static, f32, DotDistance>),
    Euclidean(Hnsw<'static, f32, SquaredL2Distance>),
    Manhattan(Hnsw<'static, f32, ManhattanDistance>),
}

macro_rules! with_graph {
    ($graph:expr, $h:ident => $body:expr) => {
        match $graph {
            Graph::Cosine($h) => $body,
            Graph::Dot($h) => $body,
            Graph::Euclidean($h) => $body,
            Graph::Manhattan($h) => $body,
        }
    };
}

const MAX_LAYER: usize = 16;

impl Graph {
    fn new(metric: Metric, p: &HnswParams, capacity: usize) -> Graph {
        let cap = capacity.max(1);
        match metric {
            Metric::Cosine => Graph::Cosine(Hnsw::new(p.m, cap, MAX_LAYER, p.ef_construction, CosineDistance)),
            Metric::Dot => Graph::Dot(Hnsw::new(p.m, cap, MAX_LAYER, p.ef_construction, DotDistance)),
            Metric::Euclidean => Graph::Euclidean(Hnsw::new(p.m, cap, MAX_LAYER, p.ef_construction, SquaredL2Distance)),
            Metric::Manhattan => Graph::Manhattan(Hnsw::new(p.m, cap, MAX_LAYER, p.ef_construction, ManhattanDistance)),
        }
    }

    fn insert(&self, store: &VectorStore, slots: &[u32], parallel: bool) {
        let items: Vec<(&[f32], usize)> = slots.iter().map(|&s| (store.vector(s), s as usize)).collect();
        with_graph!(self, h => {
            if parallel && items.len() >= 256 {
                h.parallel_insert_slice(&items);
            } else {
                items.iter().for_each(|&item| h.insert_slice(item));
            }
        })
    }

    /// Live hits among the `ef` nearest candidates, rescored exactly, best first, at most `k`.
    fn search(&self, store: &VectorStore, query: &[f32], k: usize, ef: usize, filter: Option<&AllowSet>) -> Vec<Hit> {
        let keep = |slot: &usize| {
            let slot = *slot as u32;
            store.is_live(slot) && crate::filter::allowed(filter, store.doc(slot))
        };
        // hnsw_rs explores far more of the graph whenever a filter is passed (it never takes
        // its early exit), so tombstones alone are not passed as one: ask for `ef` neighbours
        // and drop dead ones afterwards; the caller widens `ef` if too few survive.
        let found = match filter {
            Some(_) => with_graph!(self, h => h.search_filter(query, ef, ef, Some(&keep))),
            None => with_graph!(self, h => h.search_filter(query, ef, ef, None)),
        };
        let mut hits: Vec<Hit> = found
            .iter()
            .map(|n| n.d_id as u32)
            .filter(|&slot| store.is_live(slot) && crate::filter::allowed(filter, store.doc(slot)))
            .map(|slot| Hit {
                id: store.doc(slot),
                score: store.metric().score(query, store.vector(slot)),
            })
            .collect();
        hits.sort_by(Hit::rank_cmp);
        hits.dedup_by_key(|h| h.id);
        hits.truncate(k);
        hits
    }

    /// Writes hnsw_rs' dump for `generation`; returns each file's CRC and length.
    fn dump(&self, dir: &Path, generation: u64) -> Result<[(u32, u64); 2]> {
        let base = graph_basename(generation);
        let written = with_graph!(self, h => h.file_dump(dir, &base))
            .map_err(|e| IndexError::io(dir.join(&base), std::io::Error::other(e.to_string())))?;
        if written != base {
            return Err(IndexError::io(
                dir.join(&base),
                std::io::Error::other(format!("hnsw_rs wrote {written} instead")),
            ));
        }
        let files = graph_files(generation);
        let mut out = [(0, 0); 2];
        for (slot, name) in out.iter_mut().zip(&files) {
            let path = dir.join(name);
            persist::sync_file(&path)?;
            *slot = file_crc(&path).ok_or_else(|| IndexError::corrupt(&path, "dump vanished after writing"))?;
        }
        persist::sync_dir(dir)?;
        Ok(out)
    }

    fn reload(dir: &Path, generation: u64, metric: Metric) -> Option<Graph> {
        let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, &graph_basename(generation))));
        Some(match metric {
            Metric::Cosine => Graph::Cosine(io.load_hnsw::<f32, CosineDistance>().ok()?),
            Metric::Dot => Graph::Dot(io.load_hnsw::<f32, DotDistance>().ok()?),
            Metric::Euclidean => Graph::Euclidean(io.load_hnsw::<f32, SquaredL2Distance>().ok()?),
            Metric::Manhattan => Graph::Manhattan(io.load_hnsw::<f32, ManhattanDistance>().ok()?),
        })
    }

    /// Loads the dump if both files match their recorded checksums and hnsw_rs accepts them.
    fn load(dir: &Path, generation: u64, metric: Metric, expected: [(u32, u64); 2], slots: usize) -> Option<Graph> {
        let files = graph_files(generation);
        if files
            .iter()
            .zip(expected)
            .any(|(name, want)| file_crc(&dir.join(name)) != Some(want))
        {
            return None;
        }
        // hnsw_rs' reloaded graph borrows its loader for its whole life. The loader holds only
        // paths and options once loading is done (no memory map is requested), so it is leaked
        // to give the graph a 'static lifetime: a few hundred bytes per load.
        // The checksums make a damaged file unlikely here, but hnsw_rs asserts on bad input:
        // contain any panic and rebuild instead.
        let graph = catch_unwind(AssertUnwindSafe(|| Graph::reload(dir, generation, metric))).ok()??;
        let points = with_graph!(&graph, h => h.get_nb_point());
        (points <= slots).then_some(graph)
    }
}
