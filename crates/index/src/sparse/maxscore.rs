//! The query evaluator of the sparse index: windowed, block-max MaxScore.
//!
//! Slots are taken in windows (1,024 at first, so that early hits set a threshold soon, then
//! doubling up to 16,384); in each, every query term is bounded by its query weight times the
//! largest weight of its blocks (of 64 postings) there, and the terms whose bounds together
//! cannot lift a document to the current `k`-th score are *non-essential*. A window where every
//! term is non-essential is skipped. Otherwise it is searched one of two ways, whichever a cost
//! model expects to be cheaper:
//! - *probe* (MaxScore proper): the essential terms are summed term-at-a-time; each document found
//!   is probed in the non-essential lists, largest bound first, and dropped as soon as its bound
//!   falls below the threshold; survivors get the canonical score.
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

use super::{BLOCK, PostingList, SparseIndex, dot};
use crate::filter::AllowSet;
use crate::hit::{Hit, TopK};

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
pub(super) struct MaxScore<'a> {
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
    pub(super) fn new(
        index: &'a SparseIndex,
        terms: &'a [u32],
        weights: &'a [f32],
        filter: Option<&'a AllowSet>,
    ) -> Self {
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
    pub(super) fn run(&mut self, k: usize) -> Vec<Hit> {
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
    use crate::sparse::testing::{Lcg, bits, borrowed, check_against_brute_force, filters, random_index};

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
