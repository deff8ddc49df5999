//! The filter expression parser (`Filter::from_str`, what `sieve search --filter` reads): any
//! input parses or fails with a positioned error, and a parsed filter evaluates, without a panic
//! or a stack overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use sieve::engine::Filter;

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else { return };
    match expr.parse::<Filter>() {
        Ok(f) => {
            let metadata = json!({"path": "a.md", "chunk": 2, "kind": ["x", "y"], "n": {"m": 1.5}, "t": null});
            let _ = f.matches(&metadata);
        }
        Err(e) => assert!(e.position >= 1 && e.position <= expr.chars().count() + 1, "{e}"),
    }
});
