//! The saved index formats (HNSW manifest, vectors and graph dump; the sparse index; the flat
//! index): the first input byte picks one file of a valid saved index, the rest replaces it.
//! Loading must fail with an error or give an index that searches, never panic or exit
//! (hnsw_rs asserts and exits on bad dumps: sieve validates before it calls it).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sieve::index::{DenseIndex, FlatIndex, HnswIndex, HnswParams, Metric, SearchParams, SparseIndex};

/// Valid saved indexes, built once: (kind, folder, its files).
fn seeds() -> &'static Vec<(&'static str, PathBuf, Vec<PathBuf>)> {
    static SEEDS: OnceLock<Vec<(&'static str, PathBuf, Vec<PathBuf>)>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("sieve-fuzz-index-seeds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let vectors: Vec<Vec<f32>> = (0..40).map(|i| (0..8).map(|j| ((i * 7 + j * 3) % 11) as f32 - 5.0).collect()).collect();
        let points: Vec<(u32, &[f32])> = vectors.iter().enumerate().map(|(i, v)| (i as u32, v.as_slice())).collect();
        let params = HnswParams { flat_threshold: 0, parallel_insert: false, ..HnswParams::default() };
        let mut hnsw = HnswIndex::new(8, Metric::Cosine, params).unwrap();
        hnsw.insert(&points).unwrap();
        hnsw.save(&root.join("hnsw")).unwrap();
        let mut flat = FlatIndex::new(8, Metric::Dot);
        flat.insert(&points).unwrap();
        flat.save(&root.join("flat")).unwrap();
        let mut sparse = SparseIndex::new(100);
        let docs: Vec<(u32, Vec<u32>, Vec<f32>)> =
            (0..40).map(|i| (i, vec![i % 100, (i * 3 + 1) % 100 + 0], vec![1.0, 0.5])).map(|(i, mut ix, v)| {
                ix.sort_unstable();
                ix.dedup();
                let v = v[..ix.len()].to_vec();
                (i, ix, v)
            }).collect();
        let refs: Vec<(u32, &[u32], &[f32])> = docs.iter().map(|(i, ix, v)| (*i, ix.as_slice(), v.as_slice())).collect();
        sparse.insert(&refs).unwrap();
        sparse.save(&root.join("sparse")).unwrap();
        ["hnsw", "flat", "sparse"]
            .into_iter()
            .map(|kind| {
                let dir = root.join(kind);
                let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
                files.sort();
                (kind, dir, files)
            })
            .collect()
    })
}

fn copy(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else { return };
    let seeds = seeds();
    let all: Vec<(&str, &PathBuf, &PathBuf)> =
        seeds.iter().flat_map(|(kind, dir, files)| files.iter().map(move |f| (*kind, dir, f))).collect();
    let (kind, dir, file) = all[pick as usize % all.len()];
    let scratch = std::env::temp_dir().join(format!("sieve-fuzz-index-{}", std::process::id()));
    copy(dir, &scratch);
    std::fs::write(scratch.join(file.file_name().unwrap()), payload).unwrap();
    let query = [1.0f32, -2.0, 0.5, 3.0, 0.0, 1.0, -1.0, 2.0];
    match kind {
        "hnsw" => {
            if let Ok(index) = HnswIndex::load(&scratch) {
                let _ = index.search(&query, 5, &SearchParams::default(), None);
            }
        }
        "flat" => {
            if let Ok(index) = FlatIndex::load(&scratch) {
                let _ = index.search(&query, 5, &SearchParams::default(), None);
            }
        }
        _ => {
            if let Ok(index) = SparseIndex::load(&scratch) {
                let _ = index.search(&[1, 4, 7], &[1.0, 0.5, 0.2], 5, None);
            }
        }
    }
});
