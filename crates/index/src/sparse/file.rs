//! The sparse index's file: [`SparseIndex::save`] and [`SparseIndex::load`].
//!
//! `save` writes `sparse.vectors` in the checked envelope of `persist` (magic `SIEVSPRS`,
//! version 1). Its payload, little endian: `u32` vocabulary size, `u64` document count, then
//! per document `u32` id, `u32` nnz, nnz `u32` term ids (ascending), nnz `f32` weights. Only
//! live documents are written. `load` validates every document as `insert` does and rebuilds
//! the postings; a claimed length larger than the bytes left is refused before anything is
//! allocated.

use std::path::Path;

use super::{END, SparseIndex, StoredDoc};
use crate::error::{IndexError, Result};
use crate::persist::{self, Reader, Writer};

const MAGIC: &[u8; 8] = b"SIEVSPRS";
const VERSION: u32 = 1;
const FILE: &str = "sparse.vectors";

impl SparseIndex {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse::testing::{Lcg, bits, random_index};

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
            let mut w = Writer::default();
            w.u32(id);
            w.u32(terms.len() as u32);
            w.u32s(terms);
            w.f32s(weights);
            w.into_bytes()
        };
        let payload = |vocab: u32, count: u64, docs: &[Vec<u8>]| {
            let mut w = Writer::default();
            w.u32(vocab);
            w.u64(count);
            [w.into_bytes(), docs.concat()].concat()
        };
        let huge_nnz = [1u32.to_le_bytes(), u32::MAX.to_le_bytes()].concat();
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
}
