//! ann-benchmarks' random-xs-20 set (`../shared/data/ann-random-xs-20`, TEXMEX format) and
//! recall against its exact ground truth.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn dir() -> PathBuf {
    super::shared().join("data").join("ann-random-xs-20")
}

/// Rows of an `.fvecs` file: each row is an i32 dimension followed by that many f32.
pub fn fvecs(name: &str) -> Vec<Vec<f32>> {
    let path = dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    rows(&bytes)
        .into_iter()
        .map(|r| r.iter().map(|&w| f32::from_le_bytes(w)).collect())
        .collect()
}

/// Rows of an `.ivecs` file.
pub fn ivecs(name: &str) -> Vec<Vec<u32>> {
    let path = dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    rows(&bytes)
        .into_iter()
        .map(|r| r.iter().map(|&w| i32::from_le_bytes(w) as u32).collect())
        .collect()
}

fn rows(bytes: &[u8]) -> Vec<Vec<[u8; 4]>> {
    let words: Vec<[u8; 4]> = bytes.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let d = i32::from_le_bytes(words[i]) as usize;
        out.push(words[i + 1..i + 1 + d].to_vec());
        i += 1 + d;
    }
    out
}

/// Mean share of `truth`'s first `k` ids found in `found`'s first `k`.
pub fn recall_at(k: usize, found: &[Vec<u32>], truth: &[Vec<u32>]) -> f64 {
    let total: usize = found
        .iter()
        .zip(truth)
        .map(|(f, t)| f.iter().take(k).filter(|id| t[..k.min(t.len())].contains(id)).count())
        .sum();
    total as f64 / (found.len() * k) as f64
}
