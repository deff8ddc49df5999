//! The sparse index: an exact inverted index for SPLADE vectors, searched with block-max MaxScore.
//!
//! Three concepts, one file each:
//! - **the index** (this module): [`SparseIndex`], a forward store holding every live document's
//!   sparse vector (the source of truth for [`SparseIndex::get`],
//!   [`SparseIndex::brute_force_search`], compaction and saving) and, built from it, one posting
//!   list per vocabulary term; inserts, removals and the search entry points;
//! - **the query evaluator** (`maxscore`): windowed, block-max MaxScore over the posting lists;
//! - **the file format** (`file`): [`SparseIndex::save`] and [`SparseIndex::load`].
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
//! **Pruning.** `search` takes slots in windows and bounds each query term there by its query
//! weight times the largest weight of its blocks (of 64 postings); terms whose bounds together
//! cannot lift a document to the current `k`-th score are skipped or only probed. Bounds are
//! padded by the worst-case rounding error of the `f32` sum, so pruning never drops a document
//! brute force keeps, ties included.
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
//! **File.** `save` writes one file, `sparse.vectors`, holding the live documents' vectors;
//! `load` validates every document as `insert` does and rebuilds the postings.

mod file;
mod maxscore;
#[cfg(test)]
mod testing;

use std::collections::HashMap;
use std::fmt;

use maxscore::MaxScore;

use crate::error::{IndexError, Result};
use crate::filter::{AllowSet, allowed};
use crate::hit::{DocId, Hit, TopK};

/// Postings per block; each block keeps its largest weight for block-max pruning.
const BLOCK: usize = 64;

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

#[cfg(test)]
mod tests {
    use super::testing::{Lcg, borrowed, check_against_brute_force, filters, random_index};
    use super::*;

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
}
