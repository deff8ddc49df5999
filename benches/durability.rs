//! What durability costs a write: `add` of 1 and of 512 documents with `Durability::Flush`
//! (sled's flush, then an fsync of the store's files and folders, then the BM25 commit) against
//! `Durability::Buffered` (none of that), on a BM25-only collection so that no model time hides
//! the storage cost, and on the tiny fixture models (dense + sparse + BM25). Rounds alternate
//! the two modes; medians.
//!
//! ```sh
//! cargo bench --bench durability
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use sieve::engine::{Collection, CollectionConfig, Document, Durability};

const ROUNDS: usize = 7;
const SINGLES: usize = 40;

fn docs(start: usize, n: usize) -> Vec<Document> {
    (start..start + n)
        .map(|i| {
            Document::new(
                format!("d{i}"),
                format!("document {i} about a topic, with some words in it"),
            )
        })
        .collect()
}

/// Median seconds per `add` of `batch` documents (`SINGLES` calls of 1, or one call of 512).
fn time_adds(config: &CollectionConfig, durability: Durability, batch: usize, round: usize) -> f64 {
    let dir = std::env::temp_dir().join(format!("sieve-bench-durability-{}-{round}-{batch}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let c = Collection::create(
        &dir,
        CollectionConfig {
            durability,
            ..config.clone()
        },
    )
    .unwrap();
    c.add(docs(1_000_000, 8)).unwrap(); // warm
    let calls = if batch == 1 { SINGLES } else { 1 };
    let mut times = Vec::with_capacity(calls);
    for call in 0..calls {
        let start = Instant::now();
        c.add(docs(call * batch, batch)).unwrap();
        times.push(start.elapsed().as_secs_f64());
    }
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
    median(&mut times)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let bm25 = CollectionConfig {
        dense: None,
        sparse: None,
        reranker: None,
        ..CollectionConfig::default()
    };
    let tiny = common::tiny_collection_config();
    println!("add latency, median of {ROUNDS} rounds (1 document: median of {SINGLES} calls a round)");
    println!(
        "{:<22} {:>6} {:>12} {:>12} {:>9}",
        "collection", "docs", "Flush ms", "Buffered ms", "ratio"
    );
    for (name, config) in [("BM25 only", &bm25), ("tiny dense+sparse+BM25", &tiny)] {
        for batch in [1, 512] {
            let (mut flush, mut buffered) = (Vec::new(), Vec::new());
            for round in 0..ROUNDS {
                // Alternate which mode goes first.
                if round % 2 == 0 {
                    flush.push(time_adds(config, Durability::Flush, batch, round));
                    buffered.push(time_adds(config, Durability::Buffered, batch, round));
                } else {
                    buffered.push(time_adds(config, Durability::Buffered, batch, round));
                    flush.push(time_adds(config, Durability::Flush, batch, round));
                }
            }
            let (f, b) = (median(&mut flush) * 1e3, median(&mut buffered) * 1e3);
            println!("{name:<22} {batch:>6} {f:>12.2} {b:>12.2} {:>8.2}×", f / b);
        }
    }
}
