//! Vector storage shared by the dense indexes: contiguous f32 rows addressed by *slot*.
//!
//! A slot is a row number; [`DocId`]s map to slots. Replacing or removing a document only
//! marks its slot dead (a tombstone), so slot numbers stay stable for the HNSW graph that
//! refers to them; [`VectorStore::compacted`] drops dead slots when the graph is rebuilt.

use std::collections::HashMap;
use std::path::Path;

use roaring::RoaringBitmap;

use crate::error::{IndexError, Result};
use crate::filter::AllowSet;
use crate::hit::{DocId, Hit, TopK};
use crate::metric::{Metric, validate};
use crate::persist::{Reader, Writer};

/// Rows of one dimension and metric, stored as the metric compares them.
#[derive(Debug, Clone)]
pub(crate) struct VectorStore {
    dim: usize,
    metric: Metric,
    /// `slots × dim` values, slot-major.
    data: Vec<f32>,
    /// Document of each slot, dead or alive.
    docs: Vec<DocId>,
    /// The live slot of each live document.
    slot_of: HashMap<DocId, u32>,
    /// Live documents, for fast filter intersections.
    live_docs: RoaringBitmap,
}

impl VectorStore {
    pub(crate) fn new(dim: usize, metric: Metric) -> Self {
        VectorStore {
            dim,
            metric,
            data: Vec::new(),
            docs: Vec::new(),
            slot_of: HashMap::new(),
            live_docs: RoaringBitmap::new(),
        }
    }

    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    pub(crate) fn metric(&self) -> Metric {
        self.metric
    }

    /// Live documents.
    pub(crate) fn len(&self) -> usize {
        self.slot_of.len()
    }

    /// All slots, dead ones included.
    pub(crate) fn slots(&self) -> usize {
        self.docs.len()
    }

    pub(crate) fn dead(&self) -> usize {
        self.slots() - self.len()
    }

    pub(crate) fn contains(&self, id: DocId) -> bool {
        self.slot_of.contains_key(&id)
    }

    pub(crate) fn live_docs(&self) -> &RoaringBitmap {
        &self.live_docs
    }

    pub(crate) fn slot(&self, id: DocId) -> Option<u32> {
        self.slot_of.get(&id).copied()
    }

    pub(crate) fn doc(&self, slot: u32) -> DocId {
        self.docs[slot as usize]
    }

    /// Whether `slot` holds the current vector of its document.
    pub(crate) fn is_live(&self, slot: u32) -> bool {
        self.docs
            .get(slot as usize)
            .is_some_and(|doc| self.slot_of.get(doc) == Some(&slot))
    }

    pub(crate) fn vector(&self, slot: u32) -> &[f32] {
        let start = slot as usize * self.dim;
        &self.data[start..start + self.dim]
    }

    /// Validates a batch without changing anything.
    pub(crate) fn check(&self, points: &[(DocId, &[f32])]) -> Result<()> {
        points
            .iter()
            .try_for_each(|(id, v)| validate(|| format!("vector of document {id}"), v, self.dim))
    }

    /// Validates a query and turns it into the stored form.
    pub(crate) fn prepare_query(&self, query: &[f32]) -> Result<Vec<f32>> {
        validate(|| "query vector".to_string(), query, self.dim)?;
        Ok(self.metric.prepare(query))
    }

    /// Appends (or replaces) already-checked points; returns their new slots in order.
    pub(crate) fn push(&mut self, points: &[(DocId, &[f32])]) -> Vec<u32> {
        let mut slots = Vec::with_capacity(points.len());
        for &(id, v) in points {
            let slot = u32::try_from(self.docs.len()).expect("fewer than 2^32 slots");
            self.data.extend(self.metric.prepare(v));
            self.docs.push(id);
            self.slot_of.insert(id, slot);
            self.live_docs.insert(id);
            slots.push(slot);
        }
        slots
    }

    /// Marks documents dead; returns how many were live.
    pub(crate) fn remove(&mut self, ids: &[DocId]) -> usize {
        ids.iter()
            .filter(|id| {
                self.live_docs.remove(**id);
                self.slot_of.remove(id).is_some()
            })
            .count()
    }

    /// Exact top-k over live documents, restricted to `filter`. `query` is prepared.
    pub(crate) fn exact_search(&self, query: &[f32], k: usize, filter: Option<&AllowSet>) -> Vec<Hit> {
        let mut top = TopK::new(k);
        if k == 0 {
            return Vec::new();
        }
        match filter {
            // A selective filter is cheaper to walk than the whole store.
            Some(allow) if allow.len() < self.len() as u64 => {
                for id in allow.iter() {
                    if let Some(&slot) = self.slot_of.get(&id) {
                        top.push(Hit {
                            id,
                            score: self.metric.score(query, self.vector(slot)),
                        });
                    }
                }
            }
            _ => {
                for (slot, row) in self.data.chunks_exact(self.dim.max(1)).enumerate() {
                    let id = self.docs[slot];
                    if self.slot_of.get(&id) != Some(&(slot as u32)) || !crate::filter::allowed(filter, id) {
                        continue;
                    }
                    top.push(Hit {
                        id,
                        score: self.metric.score(query, row),
                    });
                }
            }
        }
        top.into_sorted_vec()
    }

    /// A copy holding only live slots, in slot order.
    pub(crate) fn compacted(&self) -> VectorStore {
        let mut out = VectorStore::new(self.dim, self.metric);
        for slot in 0..self.slots() as u32 {
            if self.is_live(slot) {
                let id = self.doc(slot);
                out.data.extend_from_slice(self.vector(slot));
                out.docs.push(id);
                out.slot_of.insert(id, out.docs.len() as u32 - 1);
                out.live_docs.insert(id);
            }
        }
        out
    }

    /// Serialises: `u32 dim`, `u8 metric`, `u64 slots`, slots × `u32 doc`, slots × `u8 live`,
    /// then `slots × dim` f32, all little endian.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Writer::with_capacity(13 + self.docs.len() * 5 + self.data.len() * 4);
        out.u32(self.dim as u32);
        out.u8(metric_code(self.metric));
        out.u64(self.docs.len() as u64);
        out.u32s(&self.docs);
        (0..self.docs.len() as u32).for_each(|s| out.u8(self.is_live(s) as u8));
        out.f32s(&self.data);
        out.into_bytes()
    }

    /// Inverse of [`to_bytes`](Self::to_bytes); `path` names the file in errors.
    pub(crate) fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |reason: &str| IndexError::corrupt(path, reason.to_string());
        let mut r = Reader::new(bytes, path);
        let dim = r.u32().map_err(|_| bad("missing dimension"))? as usize;
        let metric =
            metric_from_code(r.u8().map_err(|_| bad("missing metric"))?).ok_or_else(|| bad("unknown metric"))?;
        let slots = r.u64().map_err(|_| bad("missing slot count"))? as usize;
        if dim == 0 || slots.checked_mul(5 + dim * 4) != Some(r.remaining()) {
            return Err(bad("lengths do not add up"));
        }
        let mut store = VectorStore::new(dim, metric);
        store.docs = r.u32s(slots)?;
        let live = r.take(slots)?;
        store.data = r.f32s(slots * dim)?;
        for (slot, &is_live) in live.iter().enumerate() {
            if is_live != 0 {
                let id = store.docs[slot];
                if store.slot_of.insert(id, slot as u32).is_some() {
                    return Err(bad("a document is live in two slots"));
                }
                store.live_docs.insert(id);
            }
        }
        if store.data.iter().any(|x| !x.is_finite()) {
            return Err(bad("non-finite vector component"));
        }
        Ok(store)
    }
}

fn metric_code(metric: Metric) -> u8 {
    match metric {
        Metric::Cosine => 0,
        Metric::Dot => 1,
        Metric::Euclidean => 2,
        Metric::Manhattan => 3,
    }
}

fn metric_from_code(code: u8) -> Option<Metric> {
    Some(match code {
        0 => Metric::Cosine,
        1 => Metric::Dot,
        2 => Metric::Euclidean,
        3 => Metric::Manhattan,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_remove_compact_and_round_trip() {
        let mut store = VectorStore::new(2, Metric::Dot);
        store.push(&[(7, &[1.0, 0.0][..]), (8, &[0.0, 1.0][..])]);
        store.push(&[(7, &[2.0, 2.0][..])]);
        assert_eq!((store.len(), store.slots(), store.dead()), (2, 3, 1));
        assert!(!store.is_live(0) && store.is_live(2));
        let hits = store.exact_search(&[1.0, 0.0], 5, None);
        assert_eq!(
            hits.iter().map(|h| (h.id, h.score)).collect::<Vec<_>>(),
            [(7, 2.0), (8, 0.0)]
        );

        let path = Path::new("mem");
        let back = VectorStore::from_bytes(&store.to_bytes(), path).unwrap();
        assert_eq!(back.exact_search(&[1.0, 0.0], 5, None), hits);
        assert!(VectorStore::from_bytes(&store.to_bytes()[..20], path).is_err());

        assert_eq!(store.remove(&[8, 99]), 1);
        let compact = store.compacted();
        assert_eq!((compact.len(), compact.slots()), (1, 1));
        assert_eq!(compact.vector(0), &[2.0, 2.0]);
    }
}
