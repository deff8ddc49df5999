//! A model folder with one file replaced by the input (config.json, tokenizer files, the
//! sentence-transformers configs, or the weights), then one encode: loading fails with an
//! error or the model encodes, never a panic. Starts from the tiny BERT fixture in
//! `../shared/fixtures` (`SIEVE_SHARED` overrides where `shared` is).
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use sieve::SentenceTransformer;

const FILES: [&str; 6] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "sentence_bert_config.json",
    "modules.json",
    "model.safetensors",
];

fn fixture() -> PathBuf {
    let shared = std::env::var_os("SIEVE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    shared.join("fixtures/bert-st-mean-norm")
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else { return };
    let scratch = std::env::temp_dir().join(format!("sieve-fuzz-model-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    copy(&fixture(), &scratch);
    std::fs::write(scratch.join(FILES[pick as usize % FILES.len()]), payload).unwrap();
    if let Ok(model) = SentenceTransformer::load(&scratch) {
        let _ = model.encode(&["a short text to encode", "and a second, longer one with more words"]);
    }
});
