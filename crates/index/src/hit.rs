//! Search results and the top-k collector every index shares.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Internal document id. The engine maps user ids to these; indexes never see user ids.
pub type DocId = u32;

/// One search result: a document and its score, higher is better.
///
/// ```
/// use sieve_index::Hit;
///
/// let mut hits = vec![Hit { id: 2, score: 0.5 }, Hit { id: 1, score: 0.9 }, Hit { id: 0, score: 0.5 }];
/// hits.sort_by(Hit::rank_cmp); // best first, ties by id
/// assert_eq!(hits.iter().map(|hit| hit.id).collect::<Vec<_>>(), [1, 0, 2]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The document.
    pub id: DocId,
    /// Its score under the index's metric (similarity, not distance).
    pub score: f32,
}

impl Hit {
    /// The order of results: score descending, then id ascending, so ties are deterministic.
    pub fn rank_cmp(&self, other: &Hit) -> Ordering {
        other.score.total_cmp(&self.score).then(self.id.cmp(&other.id))
    }
}

/// Heap entry ordered so that the *worst* hit is at the top of a max-heap.
#[derive(Debug, Clone, Copy)]
struct Worst(Hit);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.rank_cmp(&other.0)
    }
}

/// Keeps the best `k` hits seen so far (score descending, ties by id ascending).
///
/// ```
/// use sieve_index::{Hit, TopK};
/// let mut top = TopK::new(2);
/// for (id, score) in [(3, 0.5), (1, 0.9), (2, 0.5)] {
///     top.push(Hit { id, score });
/// }
/// let ids: Vec<u32> = top.into_sorted_vec().iter().map(|h| h.id).collect();
/// assert_eq!(ids, [1, 2]);
/// ```
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    /// An empty collector for the best `k` hits.
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.saturating_add(1).min(1 << 16)),
        }
    }

    /// Offers a hit; returns whether it was kept.
    pub fn push(&mut self, hit: Hit) -> bool {
        if self.k == 0 {
            return false;
        }
        if self.heap.len() < self.k {
            self.heap.push(Worst(hit));
            return true;
        }
        let worst = self.heap.peek().expect("heap is full, so not empty");
        if hit.rank_cmp(&worst.0) == Ordering::Less {
            self.heap.pop();
            self.heap.push(Worst(hit));
            true
        } else {
            false
        }
    }

    /// Whether `k` hits are held.
    pub fn is_full(&self) -> bool {
        self.heap.len() >= self.k
    }

    /// The score a new hit must beat (or tie with a lower id) to enter, once full.
    pub fn threshold(&self) -> Option<f32> {
        if self.is_full() {
            self.heap.peek().map(|w| w.0.score)
        } else {
            None
        }
    }

    /// Number of hits held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no hit is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The hits, best first.
    pub fn into_sorted_vec(self) -> Vec<Hit> {
        // BinaryHeap::into_sorted_vec is ascending by Ord, and Ord puts the best first.
        self.heap.into_sorted_vec().into_iter().map(|w| w.0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_best_k_with_id_tiebreak() {
        let mut top = TopK::new(3);
        for (id, score) in [(5, 1.0), (4, 1.0), (9, 3.0), (1, 0.1), (2, 1.0), (3, 2.0)] {
            top.push(Hit { id, score });
        }
        let got: Vec<(u32, f32)> = top.into_sorted_vec().iter().map(|h| (h.id, h.score)).collect();
        assert_eq!(got, [(9, 3.0), (3, 2.0), (2, 1.0)]);
    }

    #[test]
    fn zero_k_keeps_nothing() {
        let mut top = TopK::new(0);
        assert!(!top.push(Hit { id: 1, score: 1.0 }));
        assert!(top.into_sorted_vec().is_empty());
    }
}
