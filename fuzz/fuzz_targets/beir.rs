//! The BEIR readers (`qrels/*.tsv`, `corpus.jsonl` / `queries.jsonl`): any file is read or
//! refused with a line-numbered error, without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sieve::engine::eval::{read_jsonl, read_qrels};

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("sieve-fuzz-beir-{}", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let _ = read_qrels(&path);
    let _ = read_jsonl(&path);
});
