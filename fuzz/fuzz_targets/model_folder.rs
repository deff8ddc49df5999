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

/// libfuzzer-sys's panic hook aborts on every panic, even one the library catches on purpose
/// (the tokenizers crate panics on some malformed files; sieve contains that and returns an
/// error). This hook only prints, so caught panics pass; a panic that escapes the library
/// still ends the run as a crash (libfuzzer-sys aborts on it).
fn print_only_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("caught or not: {info}"))));
}

fuzz_target!(|data: &[u8]| {
    print_only_panic_hook();
    let Some((&pick, payload)) = data.split_first() else { return };
    let scratch = std::env::temp_dir().join(format!("sieve-fuzz-model-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    copy(&fixture(), &scratch);
    std::fs::write(scratch.join(FILES[pick as usize % FILES.len()]), payload).unwrap();
    if let Ok(model) = SentenceTransformer::load(&scratch) {
        let _ = model.encode(&["a short text to encode", "and a second, longer one with more words"]);
    }
});
