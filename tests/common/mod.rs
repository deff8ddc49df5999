//! Helpers shared by the integration tests: where `../shared` is, golden-file access and
//! tolerant comparisons.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

mod scratch;
#[allow(unused_imports)] // not every test file uses it
pub use scratch::ScratchDir;

/// `../shared` beside the repository (override with `SIEVE_SHARED`).
pub fn shared() -> PathBuf {
    if let Some(dir) = std::env::var_os("SIEVE_SHARED") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("shared")
}

pub fn golden(relative: &str) -> Value {
    read_golden(&shared().join(relative))
}

/// A fixture committed with the tests, `tests/fixtures/NAME` (made by the scripts there).
pub fn repo_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

pub fn read_golden(path: &std::path::Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read golden file {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("golden file {} is not JSON: {e}", path.display()))
}

/// A model folder from `../shared/fixtures`, as an absolute path without `..` (the form a
/// collection stores).
pub fn fixture(name: &str) -> PathBuf {
    let path = shared().join("fixtures").join(name);
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// Hub ids need `scripts/fetch-models` to have filled the Hugging Face cache.
pub mod scifact;

/// A collection on the tiny fixture models (real model folders, random weights): dense +
/// sparse + BM25, no reranker. Fast enough for tests that exercise the engine, not quality.
pub fn tiny_collection_config() -> sieve::engine::CollectionConfig {
    let model = |name: &str| Some(fixture(name).to_string_lossy().into_owned());
    sieve::engine::CollectionConfig {
        dense: model("bert-st-mean-norm"),
        sparse: model("bert-splade"),
        text: true,
        reranker: None,
        ..sieve::engine::CollectionConfig::default()
    }
}

/// Copies the model folder `from` to `to` (files and subfolders).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    try_copy_dir(from, to).unwrap();
}

/// [`copy_dir`] returning the first error.
pub fn try_copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            try_copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// A copy of a folder that a live index may be rewriting (tantivy's merge threads delete the
/// files of merged segments at any time): the copy is retried until no file vanished under it.
pub fn snapshot_dir(from: &std::path::Path, to: &std::path::Path) {
    for attempt in 1.. {
        let _ = std::fs::remove_dir_all(to);
        match try_copy_dir(from, to) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 20 => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            Err(e) => panic!("cannot copy {}: {e}", from.display()),
        }
    }
}

/// Sets every value of the F32 tensor `name` in the safetensors file at `path` to `value`
/// (the file layout: an 8-byte little-endian header length, a JSON header, the raw data).
pub fn fill_tensor(path: &std::path::Path, name: &str, value: f32) {
    let mut bytes = std::fs::read(path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let entry = &header[name];
    assert_eq!(entry["dtype"], "F32", "{name} in {}", path.display());
    let offsets = u32s(&entry["data_offsets"]);
    let data = &mut bytes[8 + header_len..];
    for chunk in data[offsets[0] as usize..offsets[1] as usize].chunks_exact_mut(4) {
        chunk.copy_from_slice(&value.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

pub fn hub_hint() -> &'static str {
    "model not in the Hugging Face cache: run scripts/fetch-models first"
}

pub fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

pub fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("integer") as u32)
        .collect()
}

pub fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("string").to_string())
        .collect()
}

/// Golden `[[a, b], ...]` text pairs.
pub fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|p| {
            (
                p[0].as_str().expect("string").to_string(),
                p[1].as_str().expect("string").to_string(),
            )
        })
        .collect()
}

pub fn rows(v: &Value) -> Vec<Vec<f32>> {
    v.as_array().expect("array").iter().map(f32s).collect()
}

/// Largest absolute difference, asserting equal lengths.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length differs");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    let diff = max_abs_diff(got, want);
    assert!(diff <= tol, "{what}: max |diff| = {diff:e} > {tol:e}");
    eprintln!("{what}: max |diff| = {diff:e}");
}

/// Unpadded token ids from golden `input_ids` + `attention_mask`.
pub fn unpadded(ids: &Value, mask: &Value) -> Vec<Vec<u32>> {
    ids.as_array()
        .unwrap()
        .iter()
        .zip(mask.as_array().unwrap())
        .map(|(i, m)| {
            u32s(i)
                .into_iter()
                .zip(u32s(m))
                .filter(|(_, m)| *m == 1)
                .map(|(i, _)| i)
                .collect()
        })
        .collect()
}
