//! HNSW against exact search, in one run: build time, and queries per second and recall@10 at
//! several `ef_search` values, on ann-benchmarks' random-xs-20 (9,000 × 20, euclidean and
//! angular). Prints one table per metric; ratios are against `FlatIndex` measured in the same
//! invocation. The same table on SciFact's all-MiniLM-L6-v2 vectors is the workspace's
//! `cargo bench --bench dense_index` (making them needs the encoder).
//!
//! ```sh
//! cargo bench -p sieve-index --bench dense_index
//! ```

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/hnsw_vs_flat.rs"]
mod hnsw_vs_flat;

use common::ann;
use hnsw_vs_flat::run;
use sieve_index::Metric;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this file once in test mode.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let train = ann::fvecs("train.fvecs");
    let test = ann::fvecs("test.fvecs");
    run("random-xs-20", Metric::Euclidean, &train, &test);
    run("random-xs-20", Metric::Cosine, &train, &test);
}
