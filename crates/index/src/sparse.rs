//! The sparse index: an exact inverted index for SPLADE vectors, searched with block-max MaxScore.
//!
//! [`SparseIndex`] owns two things: a forward store holding every live document's sparse vector
//! (the source of truth for [`SparseIndex::get`], [`SparseIndex::brute_force_search`], compaction
//! and saving) and, built from it, one posting list per vocabulary term.
//!
//! **Scores.** The score of a document for a query is their dot product, accumulated in `f32`
//! from `0.0` over the shared terms **in ascending term-id order**, each step `score += q_t * d_t`
//! (no fused multiply-add). This is the order `sieve_encoders::SparseVector::dot` uses, and both
//! [`SparseIndex::search`] and [`SparseIndex::brute_force_search`] compute every score this way,
//! so their results are equal bit for bit: same ids, same order (score descending, id ascending
//! on ties, as [`Hit::rank_cmp`] orders), same scores. Only documents whose score is **greater
//! than zero** are returned, so a document that shares no term with the query (or only terms of
//! weight zero) never appears.
//!
//! **Pruning.** `search` runs a windowed, block-max MaxScore. Slots are taken in windows (1,024
//! at first, so that early hits set a threshold soon, then doubling up to 16,384); in each, every
//! query term is bounded by its query weight times the largest weight of its blocks (of 64
//! postings) there, and the terms whose bounds together cannot lift a document to the current
//! `k`-th score are *non-essential*. A window where every term is non-essential is
//! skipped. Otherwise it is searched one of two ways, whichever a cost model expects to be cheaper:
//! - *probe* (MaxScore proper): the essential terms are summed term-at-a-time; each document found
//!   is probed in the non-essential lists, largest bound first, and dropped as soon as its bound
//!   falls below the threshold; survivors get the canonical score above.
//! - *scan*: every term is summed term-at-a-time in term-id order, which is the canonical `f32`
//!   sum itself, so nothing is rescored.
//!
//! SPLADE queries are long and their expansion terms spread over the corpus (on SciFact with
//! splade-tiny a query has 53 terms reaching 54,000 postings), so probing a candidate costs more
//! than reading the tens of postings it would save and most windows are scanned; probing pays when
//! few documents hold the essential terms. Bounds are computed in `f64`, padded by the worst-case
//! rounding error of the `f32` sum (relative and underflow) and rounded up, so they bound the score
//! actually computed: pruning never drops a document brute force keeps, ties included (a bound
//! equal to the threshold is kept, as a tie with a lower id still enters).
//!
//! **Weights must be ≥ 0.** SPLADE weights are `log(1 + ReLU(x))`, never negative, and the
//! bounds above rely on every product `q_t * d_t` being non-negative; a negative weight in a
//! document or a query is refused with [`IndexError::InvalidParameter`] rather than silently
//! mis-ranked.
//!
//! **Updates.** Postings are keyed by internal slots handed out in insertion order, so every
//! insert appends. Removing a document (or replacing it: inserting an id again) tombstones its
//! slot; searches skip dead slots, and the postings are rebuilt without them once dead postings
//! outnumber live ones (or on [`SparseIndex::compact`]).
//!
//! **File.** `save` writes `sparse.vectors` in the checked envelope of `persist` (magic
//! `SIEVSPRS`, version 1). Its payload, little endian: `u32` vocabulary size, `u64` document
//! count, then per document `u32` id, `u32` nnz, nnz `u32` term ids (ascending), nnz `f32`
//! weights. `load` validates every document as `insert` does and rebuilds the postings; a claimed
//! length larger than the bytes left is refused before anything is allocated.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::error::{IndexError, Result};
use crate::filter::{AllowSet, allowed};
use crate::hit::{DocId, Hit, TopK};
use crate::persist::{self, Reader, Writer};

/// Postings per block; each block keeps its largest weight for block-max pruning.
const BLOCK: usize = 64;

const MAGIC: &[u8; 8] = b"SIEVSPRS";
const VERSION: u32 = 1;
const FILE: &str = "sparse.vectors";
/// "No more postings": slots stay below it.
const END: u32 = u32::MAX;

/// One live document of the forward store, term ids ascending.
#[derive(Debug, Clone)]
struct StoredDoc {
    id: DocId,
    terms: Box<[u32]>,
    weights: Box<[f32]>,
}

/// The documents holding one term, by ascending slot, with the largest weight of each block.
#[derive(Debug, Clone, Default)]
struct PostingList {
    slots: Vec<u32>,
    weights: Vec<f32>,
    /// Largest weight of each block of [`BLOCK`] postings.
    block_max: Vec<f32>,
}

impl PostingList {
    fn push(&mut self, slot: u32, weight: f32) {
        if self.slots.len().is_multiple_of(BLOCK) {
            self.block_max.push(weight);
        } else if let Some(max) = self.block_max.last_mut() {
            *max = max.max(weight);
        }
        self.slots.push(slot);
        self.weights.push(weight);
    }
}

/// An exact inverted index over sparse (SPLADE) vectors, keyed by [`DocId`].
///
/// Term ids must be below the vocabulary size given to [`SparseIndex::new`] (0 means no bound);
/// weights must be finite and non-negative. See the [module documentation](self) for the
/// scoring order that makes [`search`](Self::search) and
/// [`brute_force_search`](Self::brute_force_search) agree bit for bit.
///
/// ```
/// use sieve_index::SparseIndex;
///
/// let mut index = SparseIndex::new(30522);
/// index.insert(&[(1, &[10, 20][..], &[1.0, 0.5][..]), (2, &[20, 30][..], &[2.0, 1.0][..])])?;
/// let hits = index.search(&[20, 30], &[1.0, 1.0], 10, None)?;
/// assert_eq!((hits[0].id, hits[0].score), (2, 3.0));
/// assert_eq!((hits[1].id, hits[1].score), (1, 0.5));
/// assert_eq!(hits, index.brute_force_search(&[20, 30], &[1.0, 1.0], 10, None)?);
/// # Ok::<(), sieve_index::IndexError>(())
/// ```
#[derive(Clone)]
pub struct SparseIndex {
    vocab_size: u32,
    /// Forward store by slot; `None` is a tombstone.
    docs: Vec<Option<StoredDoc>>,
    slot_of: HashMap<DocId, u32>,
    postings: HashMap<u32, PostingList>,
    /// Postings held, dead ones included.
    total_postings: usize,
    /// Postings of tombstoned slots, dropped by the next compaction.
    dead_postings: usize,
}

impl fmt::Debug for SparseIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SparseIndex")
            .field("vocab_size", &self.vocab_size)
            .field("len", &self.len())
            .field("terms", &self.postings.len())
            .field("postings", &self.total_postings)
            .field("dead_postings", &self.dead_postings)
            .finish()
    }
}

impl SparseIndex {
    /// An empty index for term ids below `vocab_size` (30522 for BERT-based SPLADE models);
    /// `0` accepts any `u32` term id.
    ///
    /// ```
    /// use sieve_index::SparseIndex;
    ///
    /// let mut index = SparseIndex::new(30522);
    /// assert!(index.insert(&[(1, &[30522][..], &[1.0][..])]).is_err()); // not a BERT term id
    /// assert!(SparseIndex::new(0).insert(&[(1, &[u32::MAX - 1][..], &[1.0][..])]).is_ok());
    /// ```
    pub fn new(vocab_size: u32) -> Self {
        SparseIndex {
            vocab_size,
            docs: Vec::new(),
            slot_of: HashMap::new(),
            postings: HashMap::new(),
            total_postings: 0,
            dead_postings: 0,
        }
    }

    /// The vocabulary size term ids must stay below (`0`: unbounded).
    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    /// Number of live documents.
    pub fn len(&self) -> usize {
        self.slot_of.len()
    }

    /// Whether no live document is held.
    pub fn is_empty(&self) -> bool {
        self.slot_of.is_empty()
    }

    /// Whether `id` is present.
    pub fn contains(&self, id: DocId) -> bool {
        self.slot_of.contains_key(&id)
    }

    /// The stored vector of `id`: term ids ascending and their weights.
    pub fn get(&self, id: DocId) -> Option<(&[u32], &[f32])> {
        let doc = self.docs.get(*self.slot_of.get(&id)? as usize)?.as_ref()?;
        Some((&doc.terms, &doc.weights))
    }

    /// Adds documents given as `(id, term ids, weights)`; an id already present is replaced
    /// (as is an id repeated within `docs`: the last one wins).
    ///
    /// Term ids may come in any order but not twice in one vector. Every document is validated
    /// before any is inserted, so on error the index is unchanged.
    ///
    /// ```
    /// use sieve_index::{IndexError, SparseIndex};
    ///
    /// let mut index = SparseIndex::new(100);
    /// index.insert(&[(7, &[42, 3][..], &[0.5, 1.5][..])])?;
    /// assert_eq!(index.get(7), Some((&[3, 42][..], &[1.5, 0.5][..])));
    /// let err = index.insert(&[(8, &[100][..], &[1.0][..])]).unwrap_err();
    /// assert!(matches!(err, IndexError::DimensionMismatch { expected: 100, found: 101 }));
    /// # Ok::<(), IndexError>(())
    /// ```
    pub fn insert(&mut self, docs: &[(DocId, &[u32], &[f32])]) -> Result<()> {
        let mut prepared = Vec::with_capacity(docs.len());
        for &(id, terms, weights) in docs {
            let (terms, weights) = self.validate(&|| format!("document {id}"), terms, weights)?;
            prepared.push(StoredDoc {
                id,
                terms: terms.into(),
                weights: weights.into(),
            });
        }
        if self.docs.len().saturating_add(prepared.len()) >= END as usize {
            self.compact();
            if self.docs.len().saturating_add(prepared.len()) >= END as usize {
                return Err(IndexError::InvalidParameter(format!(
                    "a sparse index holds fewer than {END} documents; {} are present and {} were added",
                    self.len(),
                    prepared.len()
                )));
            }
        }
        for doc in prepared {
            self.tombstone(doc.id);
            self.append(doc);
        }
        self.maybe_compact();
        Ok(())
    }

    /// Removes ids; unknown ids are ignored. Returns how many were present.
    pub fn remove(&mut self, ids: &[DocId]) -> usize {
        let removed = ids.iter().filter(|&&id| self.tombstone(id)).count();
        self.maybe_compact();
        removed
    }

    /// Drops removed and replaced documents from the postings now, instead of waiting for them
    /// to outnumber the live ones. Searches are exact either way; this only saves work and memory.
    pub fn compact(&mut self) {
        if self.dead_postings == 0 && self.docs.len() == self.slot_of.len() {
            return;
        }
        let docs = std::mem::take(&mut self.docs);
        self.slot_of.clear();
        self.postings.clear();
        self.total_postings = 0;
        self.dead_postings = 0;
        docs.into_iter().flatten().for_each(|doc| self.append(doc));
    }

    /// The best `k` live documents for the query `(query_indices, query_values)`, best first,
    /// restricted to `filter` if given; exact, by block-max MaxScore.
    ///
    /// Only documents scoring above zero are returned, so fewer than `k` hits come back when
    /// fewer documents share a weighted term with the query. The query is validated like a
    /// document (term ids in any order, not repeated, below the vocabulary size; weights finite
    /// and non-negative).
    ///
    /// ```
    /// use sieve_index::{AllowSet, SparseIndex};
    ///
    /// let mut index = SparseIndex::new(0);
    /// index.insert(&[(1, &[5][..], &[2.0][..]), (2, &[5][..], &[1.0][..]), (3, &[6][..], &[9.0][..])])?;
    /// let hits = index.search(&[5], &[1.0], 10, None)?;
    /// assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [1, 2]); // 3 shares no term
    /// let only_two: AllowSet = [2].into_iter().collect();
    /// assert_eq!(index.search(&[5], &[1.0], 10, Some(&only_two))?[0].id, 2);
    /// # Ok::<(), sieve_index::IndexError>(())
    /// ```
    pub fn search(
        &self,
        query_indices: &[u32],
        query_values: &[f32],
        k: usize,
        filter: Option<&AllowSet>,
    ) -> Result<Vec<Hit>> {
        let (terms, weights) = self.validate(&|| "query".to_string(), query_indices, query_values)?;
        if k == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        Ok(MaxScore::new(self, &terms, &weights, filter).run(k))
    }

    /// The same results as [`search`](Self::search), by scoring every live document: the
    /// ground truth for tests and benchmarks.
    pub fn brute_force_search(
        &self,
        query_indices: &[u32],
        query_values: &[f32],
        k: usize,
        filter: Option<&AllowSet>,
    ) -> Result<Vec<Hit>> {
        let (terms, weights) = self.validate(&|| "query".to_string(), query_indices, query_values)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let mut top = TopK::new(k);
        for doc in self.docs.iter().flatten() {
            if allowed(filter, doc.id) {
                let score = dot(&terms, &weights, &doc.terms, &doc.weights);
                if score > 0.0 {
                    top.push(Hit { id: doc.id, score });
                }
            }
        }
        Ok(top.into_sorted_vec())
    }

    /// Writes the index into `dir` (created if missing) as `sparse.vectors`, replacing what was
    /// there. Only live documents are written; the postings are rebuilt by [`load`](Self::load).
    ///
    /// ```
    /// use sieve_index::SparseIndex;
    ///
    /// let dir = std::env::temp_dir().join(format!("sieve-sparse-doc-{}", std::process::id()));
    /// let mut index = SparseIndex::new(30522);
    /// index.insert(&[(1, &[10][..], &[1.0][..])])?;
    /// index.save(&dir)?;
    /// let loaded = SparseIndex::load(&dir)?;
    /// assert_eq!(loaded.search(&[10], &[2.0], 1, None)?, index.search(&[10], &[2.0], 1, None)?);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), sieve_index::IndexError>(())
    /// ```
    pub fn save(&self, dir: &Path) -> Result<()> {
        persist::ensure_dir(dir)?;
        let mut payload = Writer::with_capacity(12 + 8 * (self.len() + self.total_postings - self.dead_postings));
        payload.u32(self.vocab_size);
        payload.u64(self.len() as u64);
        for doc in self.docs.iter().flatten() {
            payload.u32(doc.id);
            payload.u32(doc.terms.len() as u32);
            payload.u32s(&doc.terms);
            payload.f32s(&doc.weights);
        }
        persist::write_checked(&dir.join(FILE), MAGIC, VERSION, &payload.into_bytes())
    }

    /// Reads an index written by [`save`](Self::save) from `dir`.
    ///
    /// A missing file is [`IndexError::NotFound`]; a truncated, foreign, bit-flipped or
    /// inconsistent one is [`IndexError::Corrupt`]; one from another format version is
    /// [`IndexError::UnsupportedVersion`].
    ///
    /// ```no_run
    /// use sieve_index::SparseIndex;
    /// let index = SparseIndex::load(std::path::Path::new("sparse-index"))?;
    /// println!("{} documents", index.len());
    /// # Ok::<(), sieve_index::IndexError>(())
    /// ```
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE);
        let payload = persist::read_checked(&path, MAGIC, VERSION)?;
        let corrupt = |reason: String| IndexError::corrupt(&path, reason);
        let mut reader = Reader::new(&payload, &path);
        let vocab_size = reader.u32()?;
        let count = reader.u64()?;
        let mut index = SparseIndex::new(vocab_size);
        for n in 0..count {
            let id = reader.u32()?;
            let nnz = reader.u32()? as usize;
            // Each term costs 8 bytes; the reader checks they are there before allocating.
            let terms = reader.u32s(nnz)?;
            let weights = reader.f32s(nnz)?;
            let (terms, weights) = index
                .validate(&|| format!("document {id} (entry {n})"), &terms, &weights)
                .map_err(|e| corrupt(e.to_string()))?;
            if index.contains(id) {
                return Err(corrupt(format!("document {id} appears twice")));
            }
            if index.docs.len() >= END as usize - 1 {
                return Err(corrupt(format!("more than {} documents", END - 1)));
            }
            index.append(StoredDoc {
                id,
                terms: terms.into(),
                weights: weights.into(),
            });
        }
        if reader.remaining() != 0 {
            return Err(corrupt(format!("{} bytes after the last document", reader.remaining())));
        }
        Ok(index)
    }

    /// Checks one vector and returns it sorted by term id.
    fn validate(&self, what: &dyn Fn() -> String, terms: &[u32], weights: &[f32]) -> Result<(Vec<u32>, Vec<f32>)> {
        if terms.len() != weights.len() {
            return Err(IndexError::InvalidParameter(format!(
                "{} has {} term ids but {} weights",
                what(),
                terms.len(),
                weights.len()
            )));
        }
        for (position, (&term, &weight)) in terms.iter().zip(weights).enumerate() {
            if !weight.is_finite() {
                return Err(IndexError::NonFinite {
                    what: what(),
                    position,
                    value: weight,
                });
            }
            if weight < 0.0 {
                return Err(IndexError::InvalidParameter(format!(
                    "{} has the negative weight {weight} for term {term}; sparse weights must be >= 0, as SPLADE's are",
                    what()
                )));
            }
            if self.vocab_size != 0 && term >= self.vocab_size {
                return Err(IndexError::DimensionMismatch {
                    expected: self.vocab_size as usize,
                    found: term as usize + 1,
                });
            }
        }
        if terms.windows(2).all(|w| w[0] < w[1]) {
            return Ok((terms.to_vec(), weights.to_vec()));
        }
        let mut order: Vec<usize> = (0..terms.len()).collect();
        order.sort_unstable_by_key(|&i| terms[i]);
        if let Some(w) = order.windows(2).find(|w| terms[w[0]] == terms[w[1]]) {
            return Err(IndexError::InvalidParameter(format!(
                "{} lists term {} twice (positions {} and {})",
                what(),
                terms[w[0]],
                w[0].min(w[1]),
                w[0].max(w[1])
            )));
        }
        Ok((
            order.iter().map(|&i| terms[i]).collect(),
            order.iter().map(|&i| weights[i]).collect(),
        ))
    }

    /// Gives `doc` the next slot. The caller keeps the slot count below [`END`].
    fn append(&mut self, doc: StoredDoc) {
        let slot = self.docs.len() as u32;
        for (&term, &weight) in doc.terms.iter().zip(doc.weights.iter()) {
            self.postings.entry(term).or_default().push(slot, weight);
        }
        self.total_postings += doc.terms.len();
        self.slot_of.insert(doc.id, slot);
        self.docs.push(Some(doc));
    }

    /// Marks `id`'s slot dead; returns whether it was present.
    fn tombstone(&mut self, id: DocId) -> bool {
        let Some(slot) = self.slot_of.remove(&id) else {
            return false;
        };
        if let Some(doc) = self.docs.get_mut(slot as usize).and_then(Option::take) {
            self.dead_postings += doc.terms.len();
        }
        true
    }

    /// Compacts once dead postings (or dead slots) outnumber live ones, so the work is amortised
    /// over the removals that caused it.
    fn maybe_compact(&mut self) {
        let dead_slots = self.docs.len() - self.slot_of.len();
        if self.dead_postings * 2 > self.total_postings || dead_slots * 2 > self.docs.len() {
            self.compact();
        }
    }

    /// The live document in `slot`, if the filter allows it.
    #[inline]
    fn candidate(&self, slot: u32, filter: Option<&AllowSet>) -> Option<&StoredDoc> {
        let doc = self.docs.get(slot as usize)?.as_ref()?;
        allowed(filter, doc.id).then_some(doc)
    }
}

/// The canonical score: shared terms in ascending term-id order, `f32`, from `0.0`.
fn dot(a_terms: &[u32], a_weights: &[f32], b_terms: &[u32], b_weights: &[f32]) -> f32 {
    let (mut i, mut j, mut sum) = (0, 0, 0.0f32);
    while i < a_terms.len() && j < b_terms.len() {
        match a_terms[i].cmp(&b_terms[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                sum += a_weights[i] * b_weights[j];
                i += 1;
                j += 1;
            }
        }
    }
    sum
}

/// Slots per window, at most: each window is planned (bounds, essential terms, strategy) on its own.
const WINDOW: usize = 16384;

/// Slots in the first window; each next one is twice as large, up to [`WINDOW`].
const FIRST_WINDOW: usize = 1024;

/// How many scanned postings one probed candidate costs, for choosing a window's strategy
/// (measured on SciFact with splade-tiny, where probing rarely pays).
const PROBE_COST: usize = 32;

/// How a window is searched. Searches use `Auto`; tests force the other two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))]
enum Strategy {
    /// Per window, whichever of the two below the cost model expects to be cheaper.
    Auto,
    /// Every term with a non-zero bound, term-at-a-time in term-id order: exact scores.
    Scan,
    /// MaxScore: essential terms term-at-a-time, non-essential ones probed per candidate.
    Probe,
}

/// A query term's position in its posting list, and its bound over the current window.
struct Cursor<'a> {
    list: &'a PostingList,
    weight: f32,
    /// First posting at or after the window's start.
    pos: usize,
    /// First posting at or after the window's end.
    end: usize,
    /// `weight` × the largest block maximum among the window's blocks.
    bound: f64,
}

impl Cursor<'_> {
    /// Places `pos..end` on the postings in `base..limit` and bounds them.
    fn enter_window(&mut self, base: u32, limit: u32) {
        let slots = &self.list.slots;
        self.pos += slots[self.pos..].partition_point(|&s| s < base);
        self.end = self.pos + slots[self.pos..].partition_point(|&s| s < limit);
        self.bound = if self.pos == self.end {
            0.0
        } else {
            let blocks = &self.list.block_max[self.pos / BLOCK..=(self.end - 1) / BLOCK];
            self.weight as f64 * blocks.iter().fold(0.0f32, |a, &b| a.max(b)) as f64
        };
    }

    /// The weight of `slot`, if it holds the term, moving past the postings before it.
    /// Targets must not decrease within a window.
    #[inline]
    fn probe(&mut self, slot: u32) -> Option<f32> {
        let slots = &self.list.slots[..self.end];
        // Gallop, then bisect: probes of a window come in slot order and land close together.
        let mut step = 1;
        let mut hi = self.pos;
        while hi < slots.len() && slots[hi] < slot {
            self.pos = hi + 1;
            hi = self.pos + step;
            step *= 2;
        }
        let hi = hi.min(slots.len());
        self.pos += slots[self.pos..hi].partition_point(|&s| s < slot);
        (slots.get(self.pos) == Some(&slot)).then(|| self.list.weights[self.pos])
    }
}

/// Turns exact (real-number) bounds on a score into bounds on its `f32` value.
#[derive(Debug, Clone, Copy)]
struct Slack {
    rel: f64,
    abs: f64,
}

impl Slack {
    fn new(terms: usize) -> Self {
        // A sum of n non-negative f32 products carries at most n + 1 roundings of relative size
        // 2^-24 each, and each product at most 2^-150 of absolute underflow error; the f64 sums
        // of bounds add far less. Doubling the relative term covers both with room to spare.
        let n = terms as f64;
        Slack {
            rel: (2.0 * (n + 3.0) * (f32::EPSILON as f64 / 2.0)).exp(),
            abs: (n + 1.0) * 2f64.powi(-149),
        }
    }

    /// An `f32` no smaller than the computed score of a document whose exact score is at most
    /// `exact`.
    #[inline]
    fn bound(&self, exact: f64) -> f32 {
        if exact <= 0.0 {
            // Every product is exactly zero, and so is their sum.
            return 0.0;
        }
        let padded = (exact + self.abs) * self.rel;
        if padded >= f32::MAX as f64 {
            f32::INFINITY
        } else {
            (padded as f32).next_up()
        }
    }

    /// A cutoff `c` such that a document whose exact score is below `c` scores below `floor`,
    /// so comparing exact sums with `c` replaces [`bound`](Self::bound) per document; it errs
    /// only towards not pruning. `0.0` without a floor.
    fn cutoff(&self, floor: Option<f32>) -> f64 {
        let Some(floor) = floor else { return 0.0 };
        // bound() rounds to nearest and then one step up: staying below the value two steps
        // under `floor` keeps it below `floor`.
        let below = floor.next_down().next_down() as f64;
        let cutoff = ((below / self.rel - self.abs) * (1.0 - 1e-12)).max(0.0);
        // bound() is monotone, so checking the cutoff itself covers every smaller sum.
        if self.bound(cutoff) < floor { cutoff } else { 0.0 }
    }
}

/// Whether a document whose exact score is at most `exact` may enter results with this cutoff.
#[inline]
fn passes(exact: f64, cutoff: f64) -> bool {
    exact > 0.0 && exact >= cutoff
}

/// The best hits so far and the cutoff they set.
struct Collector {
    top: TopK,
    slack: Slack,
    cutoff: f64,
}

impl Collector {
    fn push(&mut self, hit: Hit) -> bool {
        let kept = self.top.push(hit);
        if kept {
            self.cutoff = self.slack.cutoff(self.top.threshold());
        }
        kept
    }
}

/// Per-window scratch space, indexed by `slot - base`.
struct Scratch {
    /// Exact `f32` scores (scan).
    scores: Vec<f32>,
    /// `f64` partial sums (probe), allocated on first use.
    partial: Vec<f64>,
    /// Which offsets some posting touched.
    seen: Vec<u64>,
}

/// Work done by one search, for tests of the pruning.
#[derive(Debug, Default, Clone, Copy)]
struct Work {
    /// Postings read term-at-a-time.
    scanned: usize,
    /// Non-essential lookups.
    probes: usize,
}

/// One evaluation of a query: windowed, block-max MaxScore.
///
/// Slots are visited in windows of [`WINDOW`]. For each, every query term is bounded by the
/// largest block maximum it has there and the terms are sorted by that bound; the longest
/// prefix whose bounds sum below the current cutoff are the window's *non-essential* terms
/// (a document holding only those cannot enter), and a window where every term is
/// non-essential is skipped whole. The rest is searched by one of two [`Strategy`]s.
struct MaxScore<'a> {
    index: &'a SparseIndex,
    filter: Option<&'a AllowSet>,
    /// The query, sorted by term id, for the canonical score.
    terms: &'a [u32],
    weights: &'a [f32],
    /// The query's terms that have postings, in term-id order.
    cursors: Vec<Cursor<'a>>,
    /// Indices into `cursors` by window bound ascending: `order[..split]` are non-essential.
    order: Vec<usize>,
    /// `prefix[i]`: sum of the bounds of `order[..i]`.
    prefix: Vec<f64>,
    strategy: Strategy,
    /// Slots per window: [`WINDOW`] but in tests.
    window: usize,
    work: Work,
}

impl<'a> MaxScore<'a> {
    fn new(index: &'a SparseIndex, terms: &'a [u32], weights: &'a [f32], filter: Option<&'a AllowSet>) -> Self {
        let cursors: Vec<Cursor> = terms
            .iter()
            .zip(weights)
            .filter_map(|(term, &weight)| {
                let list = index.postings.get(term)?;
                Some(Cursor {
                    list,
                    weight,
                    pos: 0,
                    end: 0,
                    bound: 0.0,
                })
            })
            .collect();
        let m = cursors.len();
        MaxScore {
            index,
            filter,
            terms,
            weights,
            cursors,
            order: (0..m).collect(),
            prefix: Vec::with_capacity(m + 1),
            strategy: Strategy::Auto,
            window: WINDOW,
            work: Work::default(),
        }
    }

    /// The best `k` hits.
    fn run(&mut self, k: usize) -> Vec<Hit> {
        let mut out = Collector {
            top: TopK::new(k),
            slack: Slack::new(self.cursors.len()),
            cutoff: 0.0,
        };
        // Slots stay below END, so no window end overflows.
        let slots = self.index.docs.len() as u32;
        let w = self.window.min(slots as usize);
        let mut scratch = Scratch {
            scores: vec![0.0; w],
            partial: Vec::new(),
            seen: vec![0; w.div_ceil(64)],
        };
        let mut base = 0;
        // Windows start small so the first hits set a cutoff early, then double.
        let mut size = FIRST_WINDOW.min(w);
        while base < slots {
            let limit = base + (size as u32).min(slots - base);
            size = (size * 2).min(w);
            let split = self.plan_window(base, limit, out.cutoff);
            if split < self.cursors.len() {
                if self.scan_is_cheaper(split) {
                    self.scan_window(base, &mut out, &mut scratch);
                } else {
                    self.probe_window(base, split, &mut out, &mut scratch);
                }
            }
            base = limit;
        }
        out.top.into_sorted_vec()
    }

    /// Bounds every term over `base..limit`, sorts `order` by bound and returns the number of
    /// non-essential terms: all of them when no document of the window can enter.
    fn plan_window(&mut self, base: u32, limit: u32, cutoff: f64) -> usize {
        for c in &mut self.cursors {
            c.enter_window(base, limit);
        }
        let cursors = &self.cursors;
        self.order
            .sort_unstable_by(|&a, &b| cursors[a].bound.total_cmp(&cursors[b].bound));
        self.prefix.clear();
        self.prefix.push(0.0);
        for &i in &self.order {
            self.prefix.push(self.prefix[self.prefix.len() - 1] + cursors[i].bound);
        }
        self.grow_split(0, cutoff)
    }

    /// Extends the non-essential prefix of `order` as far as `cutoff` allows.
    #[inline]
    fn grow_split(&self, mut split: usize, cutoff: f64) -> usize {
        while split < self.order.len() && !passes(self.prefix[split + 1], cutoff) {
            split += 1;
        }
        split
    }

    /// Whether reading the non-essential postings too costs less than probing them for each
    /// document the essential ones find.
    fn scan_is_cheaper(&self, split: usize) -> bool {
        let postings = |ids: &[usize]| {
            ids.iter()
                .map(|&i| self.cursors[i].end - self.cursors[i].pos)
                .sum::<usize>()
        };
        match self.strategy {
            Strategy::Scan => true,
            Strategy::Probe => split == 0,
            Strategy::Auto => {
                let (non_essential, essential) = self.order.split_at(split);
                postings(non_essential) <= PROBE_COST * postings(essential).min(self.window)
            }
        }
    }

    /// Scores every document of the window exactly, term-at-a-time in term-id order, which is
    /// the canonical order; documents holding only terms without weight here score zero.
    fn scan_window(&mut self, base: u32, out: &mut Collector, scratch: &mut Scratch) {
        for c in &mut self.cursors {
            if c.bound <= 0.0 {
                continue;
            }
            let range = c.pos..c.end;
            self.work.scanned += range.len();
            for (&s, &w) in c.list.slots[range.clone()].iter().zip(&c.list.weights[range]) {
                let i = (s - base) as usize;
                scratch.scores[i] += c.weight * w;
                scratch.seen[i / 64] |= 1 << (i % 64);
            }
            c.pos = c.end;
        }
        for word in 0..scratch.seen.len() {
            let mut bits = std::mem::take(&mut scratch.seen[word]);
            while bits != 0 {
                let i = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let score = std::mem::take(&mut scratch.scores[i]);
                if score > 0.0
                    && out.top.threshold().is_none_or(|floor| score >= floor)
                    && let Some(doc) = self.index.candidate(base + i as u32, self.filter)
                {
                    out.push(Hit { id: doc.id, score });
                }
            }
        }
    }

    /// MaxScore over the window: sums the essential terms term-at-a-time, then for each
    /// document found probes the non-essential terms, largest bound first, while its bound can
    /// still enter, and scores the survivors in the canonical order.
    fn probe_window(&mut self, base: u32, mut split: usize, out: &mut Collector, scratch: &mut Scratch) {
        scratch.partial.resize(scratch.scores.len(), 0.0);
        for &ci in &self.order[split..] {
            let c = &mut self.cursors[ci];
            let range = c.pos..c.end;
            self.work.scanned += range.len();
            let weight = c.weight as f64;
            for (&s, &w) in c.list.slots[range.clone()].iter().zip(&c.list.weights[range]) {
                let i = (s - base) as usize;
                scratch.partial[i] += weight * w as f64;
                scratch.seen[i / 64] |= 1 << (i % 64);
            }
            c.pos = c.end;
        }
        for word in 0..scratch.seen.len() {
            let mut bits = std::mem::take(&mut scratch.seen[word]);
            while bits != 0 {
                let i = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let partial = std::mem::take(&mut scratch.partial[i]);
                if !passes(partial + self.prefix[split], out.cutoff) {
                    continue;
                }
                let slot = base + i as u32;
                let Some(doc) = self.index.candidate(slot, self.filter) else {
                    continue;
                };
                if !self.probe_non_essential(slot, split, partial, out.cutoff) {
                    continue;
                }
                let score = dot(self.terms, self.weights, &doc.terms, &doc.weights);
                if score > 0.0 && out.push(Hit { id: doc.id, score }) {
                    // Terms that turn non-essential now were summed already for this window
                    // and their cursors have left it: probing them finds nothing, and their
                    // bounds only count twice, which loosens but never breaks the test.
                    split = self.grow_split(split, out.cutoff);
                }
            }
        }
    }

    /// Adds the non-essential terms' products for `slot` to `partial`, largest bound first;
    /// `false` as soon as the document provably cannot pass `cutoff`.
    fn probe_non_essential(&mut self, slot: u32, split: usize, mut partial: f64, cutoff: f64) -> bool {
        for i in (0..split).rev() {
            if !passes(partial + self.prefix[i + 1], cutoff) {
                return false;
            }
            let c = &mut self.cursors[self.order[i]];
            self.work.probes += 1;
            if let Some(w) = c.probe(slot) {
                partial += c.weight as f64 * w as f64;
            }
        }
        passes(partial, cutoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator (64-bit LCG, high bits out).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as u32
        }
        fn below(&mut self, n: u32) -> u32 {
            self.next() % n
        }
        /// Weights on a coarse grid, so that many scores tie exactly.
        fn weight(&mut self) -> f32 {
            match self.below(4) {
                0 => (1 + self.below(8)) as f32 * 0.25,
                _ => self.below(1 << 20) as f32 / (1 << 18) as f32,
            }
        }
        fn vector(&mut self, vocab: u32, max_nnz: u32) -> (Vec<u32>, Vec<f32>) {
            let nnz = self.below(max_nnz + 1);
            let mut terms: Vec<u32> = Vec::new();
            // Skewed term ids, like a real vocabulary: low ids are frequent.
            while terms.len() < nnz as usize {
                let t = self.below(vocab).min(self.below(vocab));
                if !terms.contains(&t) {
                    terms.push(t);
                }
            }
            let weights = (0..terms.len()).map(|_| self.weight()).collect();
            (terms, weights)
        }
    }

    fn random_index(rng: &mut Lcg, vocab: u32, n: u32, max_nnz: u32) -> SparseIndex {
        let docs: Vec<(u32, Vec<u32>, Vec<f32>)> = (0..n)
            .map(|i| {
                let (t, w) = rng.vector(vocab, max_nnz);
                (i * 3 + rng.below(3), t, w)
            })
            .collect();
        let mut index = SparseIndex::new(vocab);
        index.insert(&borrowed(&docs)).unwrap();
        index
    }

    fn borrowed(docs: &[(u32, Vec<u32>, Vec<f32>)]) -> Vec<(u32, &[u32], &[f32])> {
        docs.iter()
            .map(|(id, t, w)| (*id, t.as_slice(), w.as_slice()))
            .collect()
    }

    fn bits(hits: &[Hit]) -> Vec<(u32, u32)> {
        hits.iter().map(|h| (h.id, h.score.to_bits())).collect()
    }

    /// `search` equals `brute_force_search` bit for bit over many queries, `k`s and filters.
    fn check_against_brute_force(index: &SparseIndex, rng: &mut Lcg, queries: usize, filters: &[Option<AllowSet>]) {
        let vocab = index.vocab_size();
        let mut nonempty = 0;
        for q in 0..queries {
            let (terms, weights) = rng.vector(vocab, 12);
            for k in [1, 2, 5, 10, 37, 1000] {
                for filter in filters {
                    let got = index.search(&terms, &weights, k, filter.as_ref()).unwrap();
                    let want = index.brute_force_search(&terms, &weights, k, filter.as_ref()).unwrap();
                    assert_eq!(bits(&got), bits(&want), "query {q} ({terms:?}, {weights:?}), k {k}");
                    assert!(got.len() <= k && got.iter().all(|h| h.score > 0.0));
                    assert!(
                        got.iter()
                            .all(|h| index.contains(h.id) && allowed(filter.as_ref(), h.id))
                    );
                    nonempty += usize::from(!got.is_empty());
                }
            }
        }
        assert!(nonempty > 0, "the queries should find something");
    }

    fn filters(rng: &mut Lcg, max_id: u32) -> Vec<Option<AllowSet>> {
        let even: AllowSet = (0..max_id).filter(|i| i % 2 == 0).collect();
        let sparse: AllowSet = (0..max_id).filter(|_| rng.below(10) == 0).collect();
        vec![None, Some(even), Some(sparse), Some(AllowSet::new())]
    }

    #[test]
    fn search_equals_brute_force() {
        let mut rng = Lcg(7);
        for (vocab, n, nnz) in [(50, 300, 8), (500, 2000, 40), (30522, 1500, 60)] {
            let index = random_index(&mut rng, vocab, n, nnz);
            let filters = filters(&mut rng, n * 3);
            check_against_brute_force(&index, &mut rng, 60, &filters);
        }
    }

    #[test]
    fn search_equals_brute_force_after_removals_and_upserts() {
        let mut rng = Lcg(11);
        let mut index = random_index(&mut rng, 300, 1500, 30);
        let filters = filters(&mut rng, 4500);
        let mut removed = 0;
        for round in 0..6 {
            let ids: Vec<u32> = (0..150).map(|_| rng.below(4500)).collect();
            removed += index.remove(&ids);
            let upserts: Vec<(u32, Vec<u32>, Vec<f32>)> = (0..100)
                .map(|_| {
                    let (t, w) = rng.vector(300, 30);
                    (rng.below(4800), t, w)
                })
                .collect();
            index.insert(&borrowed(&upserts)).unwrap();
            for (i, (id, t, w)) in upserts.iter().enumerate() {
                // Within one batch the last vector given for an id wins.
                if upserts[i + 1..].iter().any(|u| u.0 == *id) {
                    continue;
                }
                let mut pairs: Vec<(u32, f32)> = t.iter().copied().zip(w.iter().copied()).collect();
                pairs.sort_by_key(|p| p.0);
                let (t, w): (Vec<u32>, Vec<f32>) = pairs.into_iter().unzip();
                assert_eq!(index.get(*id), Some((t.as_slice(), w.as_slice())));
            }
            check_against_brute_force(&index, &mut rng, 25, &filters);
            if round == 3 {
                index.compact();
                assert_eq!(index.dead_postings, 0);
                check_against_brute_force(&index, &mut rng, 10, &filters);
            }
        }
        assert!(removed > 0);
        assert!(
            index.dead_postings * 2 <= index.total_postings,
            "automatic compaction keeps dead postings bounded"
        );
    }

    #[test]
    fn extreme_weights_still_match_brute_force() {
        // Products that overflow to infinity, underflow to subnormals or to zero, and zeros.
        let docs: Vec<(u32, Vec<u32>, Vec<f32>)> = vec![
            (1, vec![0, 1], vec![3e38, 3e38]),
            (2, vec![0], vec![3e38]),
            (3, vec![1, 2], vec![1e-30, 1e-20]),
            (4, vec![2], vec![1e-20]),
            (5, vec![2, 3], vec![0.0, 1e-44]),
            (6, vec![3], vec![0.0]),
            (7, vec![0, 3], vec![f32::MAX, f32::MIN_POSITIVE]),
        ];
        let mut index = SparseIndex::new(4);
        index.insert(&borrowed(&docs)).unwrap();
        let queries: [(&[u32], &[f32]); 6] = [
            (&[0, 1], &[10.0, 10.0]),
            (&[1, 2], &[1e-20, 1e-30]),
            (&[2, 3], &[1e-30, 1.0]),
            (&[3], &[0.0]),
            (&[0, 3], &[1.0, 1e-10]),
            (&[3, 2, 1, 0], &[1.0, 1.0, 1.0, 1.0]),
        ];
        for (terms, weights) in queries {
            for k in 1..=8 {
                let got = index.search(terms, weights, k, None).unwrap();
                let want = index.brute_force_search(terms, weights, k, None).unwrap();
                assert_eq!(bits(&got), bits(&want), "query {terms:?} {weights:?}, k {k}");
            }
        }
        let hits = index.search(&[0, 1], &[10.0, 10.0], 3, None).unwrap();
        assert_eq!(
            hits.iter().map(|h| (h.id, h.score)).collect::<Vec<_>>(),
            [(1, f32::INFINITY), (2, f32::INFINITY), (7, f32::INFINITY)]
        );
        assert!(
            index.search(&[3], &[0.0], 5, None).unwrap().is_empty(),
            "zero scores are not hits"
        );
    }

    #[test]
    fn edge_cases() {
        let empty = SparseIndex::new(10);
        assert!(empty.search(&[1], &[1.0], 5, None).unwrap().is_empty());
        assert!(empty.brute_force_search(&[1], &[1.0], 5, None).unwrap().is_empty());
        assert!(empty.is_empty() && !empty.contains(0) && empty.get(0).is_none());

        let mut index = SparseIndex::new(0);
        index
            .insert(&[(u32::MAX, &[u32::MAX, 0][..], &[1.0, 2.0][..]), (0, &[][..], &[][..])])
            .unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index.get(0), Some((&[][..], &[][..])));
        assert_eq!(index.get(u32::MAX), Some((&[0, u32::MAX][..], &[2.0, 1.0][..])));
        assert!(index.search(&[u32::MAX], &[1.0], 0, None).unwrap().is_empty(), "k = 0");
        assert!(index.search(&[], &[], 3, None).unwrap().is_empty(), "empty query");
        assert!(
            index.search(&[5], &[1.0], 3, None).unwrap().is_empty(),
            "no shared term"
        );
        assert_eq!(
            index.search(&[u32::MAX], &[0.5], 3, None).unwrap(),
            [Hit {
                id: u32::MAX,
                score: 0.5
            }]
        );

        assert_eq!(index.remove(&[u32::MAX, u32::MAX, 17]), 1);
        assert!(index.search(&[u32::MAX], &[0.5], 3, None).unwrap().is_empty());
        assert_eq!(index.len(), 1);
        assert_eq!(index.remove(&[0]), 1);
        assert!(index.is_empty());
        // Compaction ran and left nothing behind.
        assert_eq!(
            (index.docs.len(), index.total_postings, index.postings.len()),
            (0, 0, 0)
        );
        index.insert(&[(3, &[1][..], &[1.0][..])]).unwrap();
        assert_eq!(
            index.search(&[1], &[1.0], 3, None).unwrap(),
            [Hit { id: 3, score: 1.0 }]
        );
    }

    #[test]
    fn bad_input_is_refused_and_changes_nothing() {
        let mut index = SparseIndex::new(100);
        index.insert(&[(1, &[1, 2][..], &[1.0, 1.0][..])]).unwrap();
        let bad: [(&[u32], &[f32]); 7] = [
            (&[1, 2], &[1.0]),
            (&[1, 2], &[1.0, f32::NAN]),
            (&[1], &[f32::INFINITY]),
            (&[1], &[f32::NEG_INFINITY]),
            (&[1, 2], &[1.0, -0.5]),
            (&[5, 1, 5], &[1.0, 1.0, 1.0]),
            (&[1, 100], &[1.0, 1.0]),
        ];
        for (terms, weights) in bad {
            // A good document first: the whole batch must be refused.
            let err = index
                .insert(&[(9, &[3][..], &[1.0][..]), (2, terms, weights)])
                .unwrap_err();
            assert!(!index.contains(9) && !index.contains(2), "{terms:?} {weights:?}");
            let search_err = index.search(terms, weights, 3, None).unwrap_err();
            assert!(index.brute_force_search(terms, weights, 3, None).is_err());
            for e in [&err, &search_err] {
                let ok = match e {
                    IndexError::NonFinite { position, value, .. } => *position == 1 || !value.is_finite(),
                    IndexError::DimensionMismatch {
                        expected: 100,
                        found: 101,
                    } => true,
                    IndexError::InvalidParameter(msg) => {
                        msg.contains("twice") || msg.contains("negative") || msg.contains("weights")
                    }
                    _ => false,
                };
                assert!(ok, "{terms:?} {weights:?}: {e}");
            }
        }
        let err = index.insert(&[(2, &[1][..], &[f32::NAN][..])]).unwrap_err();
        assert!(err.to_string().contains("document 2"), "{err}");
        assert_eq!(index.len(), 1);
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sieve-sparse-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        dir
    }

    #[test]
    fn save_and_load_give_identical_results() {
        let mut rng = Lcg(3);
        let mut index = random_index(&mut rng, 400, 800, 25);
        index.remove(&(0..300).collect::<Vec<u32>>());
        let dir = temp_dir("roundtrip");
        index.save(&dir).unwrap();
        let loaded = SparseIndex::load(&dir).unwrap();
        assert_eq!((loaded.len(), loaded.vocab_size()), (index.len(), 400));
        for id in 0..2400 {
            assert_eq!(loaded.get(id), index.get(id));
        }
        for _ in 0..50 {
            let (terms, weights) = rng.vector(400, 10);
            for k in [1, 10, 100] {
                let want = bits(&index.search(&terms, &weights, k, None).unwrap());
                assert_eq!(bits(&loaded.search(&terms, &weights, k, None).unwrap()), want);
                assert_eq!(
                    bits(&loaded.brute_force_search(&terms, &weights, k, None).unwrap()),
                    want
                );
            }
        }
        // Saving over a previous save replaces it.
        SparseIndex::new(5).save(&dir).unwrap();
        assert!(SparseIndex::load(&dir).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn damaged_files_are_typed_errors() {
        let dir = temp_dir("damaged");
        assert!(matches!(SparseIndex::load(&dir), Err(IndexError::NotFound { .. })));
        let mut index = SparseIndex::new(50);
        index
            .insert(&[(1, &[1, 2][..], &[1.0, 2.0][..]), (2, &[3][..], &[0.5][..])])
            .unwrap();
        index.save(&dir).unwrap();
        let path = dir.join(FILE);
        let good = std::fs::read(&path).unwrap();
        for cut in [0, 10, good.len() / 2, good.len() - 1] {
            std::fs::write(&path, &good[..cut]).unwrap();
            assert!(
                matches!(SparseIndex::load(&dir), Err(IndexError::Corrupt { .. })),
                "cut at {cut}"
            );
        }
        for byte in 0..good.len() {
            let mut flipped = good.clone();
            flipped[byte] ^= 0x04;
            std::fs::write(&path, &flipped).unwrap();
            assert!(SparseIndex::load(&dir).is_err(), "flipped byte {byte}");
        }

        // Well-checksummed payloads that lie: each must be refused as corrupt, without panicking
        // or allocating what a length claims.
        let doc = |id: u32, terms: &[u32], weights: &[f32]| {
            let mut b = id.to_le_bytes().to_vec();
            b.extend_from_slice(&(terms.len() as u32).to_le_bytes());
            terms.iter().for_each(|t| b.extend_from_slice(&t.to_le_bytes()));
            weights.iter().for_each(|w| b.extend_from_slice(&w.to_le_bytes()));
            b
        };
        let payload = |vocab: u32, count: u64, docs: &[Vec<u8>]| {
            let mut p = vocab.to_le_bytes().to_vec();
            p.extend_from_slice(&count.to_le_bytes());
            docs.iter().for_each(|d| p.extend_from_slice(d));
            p
        };
        let mut huge_nnz = 1u32.to_le_bytes().to_vec();
        huge_nnz.extend_from_slice(&u32::MAX.to_le_bytes());
        let lies = [
            payload(50, u64::MAX, &[doc(1, &[1], &[1.0])]),
            payload(50, 1, &[huge_nnz]),
            payload(50, 2, &[doc(1, &[1], &[1.0]), doc(1, &[2], &[1.0])]),
            payload(50, 1, &[doc(1, &[1], &[-1.0])]),
            payload(50, 1, &[doc(1, &[1], &[f32::NAN])]),
            payload(50, 1, &[doc(1, &[60], &[1.0])]),
            payload(50, 1, &[doc(1, &[2, 2], &[1.0, 1.0])]),
            payload(50, 1, &[doc(1, &[1], &[1.0]), vec![0]]),
            vec![1, 2, 3],
        ];
        for (i, lie) in lies.iter().enumerate() {
            persist::write_checked(&path, MAGIC, VERSION, lie).unwrap();
            let err = SparseIndex::load(&dir).unwrap_err();
            assert!(matches!(err, IndexError::Corrupt { .. }), "lie {i}: {err}");
        }
        persist::write_checked(&path, MAGIC, VERSION + 1, &payload(50, 0, &[])).unwrap();
        assert!(matches!(
            SparseIndex::load(&dir),
            Err(IndexError::UnsupportedVersion { .. })
        ));
        persist::write_checked(&path, b"SIEVFLAT", 1, &payload(50, 0, &[])).unwrap();
        assert!(matches!(SparseIndex::load(&dir), Err(IndexError::Corrupt { .. })));
        persist::write_checked(&path, MAGIC, VERSION, &payload(50, 0, &[])).unwrap();
        assert!(SparseIndex::load(&dir).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn ties_at_the_threshold_are_not_pruned() {
        // Identical documents, inserted with ids descending: each later one ties the worst hit
        // exactly, with a bound equal to its exact score, and must replace it by its lower id.
        // With the second weights the f32 sum (1 + 2 ulp) even exceeds the exact sum rounded to
        // f32 (1 + 1 ulp), so an unpadded bound would prune every later document.
        let tiny = 7.2e-8; // 0.6 ulp of 1.0
        for weights in [vec![1.0, 0.5, 0.25], vec![1.0, tiny, tiny]] {
            let docs: Vec<(u32, Vec<u32>, Vec<f32>)> =
                (1..=100).rev().map(|id| (id, vec![1, 2, 3], weights.clone())).collect();
            let mut index = SparseIndex::new(10);
            index.insert(&borrowed(&docs)).unwrap();
            for k in [1, 3, 10] {
                let hits = index.search(&[1, 2, 3], &[1.0, 1.0, 1.0], k, None).unwrap();
                assert_eq!(
                    hits,
                    index.brute_force_search(&[1, 2, 3], &[1.0, 1.0, 1.0], k, None).unwrap()
                );
                assert_eq!(
                    hits.iter().map(|h| h.id).collect::<Vec<_>>(),
                    (1..=k as u32).collect::<Vec<_>>()
                );
            }
        }
        assert_eq!(1.0f32 + tiny + tiny, 1.0 + 2.0 * f32::EPSILON);
    }

    #[test]
    fn every_strategy_and_window_equals_brute_force() {
        let mut rng = Lcg(13);
        let mut index = random_index(&mut rng, 300, 3000, 30);
        index.remove(&(0..9000).filter(|i| i % 7 == 0).collect::<Vec<u32>>());
        let filters = filters(&mut rng, 9000);
        for _ in 0..40 {
            let (terms, weights) = rng.vector(300, 12);
            let (terms, weights) = index.validate(&|| "query".into(), &terms, &weights).unwrap();
            for filter in &filters {
                for k in [1, 10, 100] {
                    let want = bits(&index.brute_force_search(&terms, &weights, k, filter.as_ref()).unwrap());
                    for strategy in [Strategy::Auto, Strategy::Scan, Strategy::Probe] {
                        for window in [64, 100, 1024, WINDOW] {
                            let mut search = MaxScore::new(&index, &terms, &weights, filter.as_ref());
                            (search.strategy, search.window) = (strategy, window);
                            assert_eq!(bits(&search.run(k)), want, "{strategy:?}, window {window}, k {k}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn pruning_skips_most_postings() {
        // MaxScore's case: ten common terms of low query weight and one rare term of high weight,
        // found only in the first fifth of the documents, so that later windows can be skipped.
        let mut rng = Lcg(5);
        let docs: Vec<(u32, Vec<u32>, Vec<f32>)> = (0..20000)
            .map(|id| {
                let mut terms: Vec<u32> = (0..10).filter(|_| rng.below(5) != 0).collect();
                if id < 4000 && rng.below(20) == 0 {
                    terms.push(50 + rng.below(5));
                }
                let weights = terms
                    .iter()
                    .map(|&t| if t < 10 { rng.weight() / 4.0 } else { 0.5 + rng.weight() })
                    .collect();
                (id, terms, weights)
            })
            .collect();
        let mut index = SparseIndex::new(100);
        index.insert(&borrowed(&docs)).unwrap();
        for (strategy, window, share) in [
            (Strategy::Auto, WINDOW, 10),
            (Strategy::Probe, 1024, 10),
            (Strategy::Scan, 256, 4),
        ] {
            let (mut work, mut postings) = (0, 0);
            for rare in 50..55 {
                let terms: Vec<u32> = (0..10).chain([rare]).collect();
                let weights: Vec<f32> = (0..10).map(|_| 0.1).chain([10.0]).collect();
                let mut search = MaxScore::new(&index, &terms, &weights, None);
                (search.strategy, search.window) = (strategy, window);
                assert_eq!(
                    bits(&search.run(10)),
                    bits(&index.brute_force_search(&terms, &weights, 10, None).unwrap())
                );
                work += search.work.scanned + search.work.probes;
                postings += search.cursors.iter().map(|c| c.list.slots.len()).sum::<usize>();
            }
            // Scan prunes only whole windows (those without the rare term); probing prunes more.
            assert!(
                work * share < postings,
                "{strategy:?}: {work} postings read or probed of {postings}"
            );
        }
    }
}
