//! HNSW against exact search on SciFact's all-MiniLM-L6-v2 vectors (5,183 × 384, cosine; encoded
//! once and cached by `tests/common/scifact.rs`): build time, and queries per second and
//! recall@10 at several `ef_search` values, ratios against `FlatIndex` measured in the same run.
//! Making the vectors takes the encoder, so this bench lives here; the same table on
//! random-xs-20 is `cargo bench -p sieve-index --bench dense_index`, whose runner it shares.
//!
//! ```sh
//! cargo bench --bench dense_index
//! ```

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../crates/index/benches/support/hnsw_vs_flat.rs"]
mod hnsw_vs_flat;

use sieve_index::Metric;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this file once in test mode.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let scifact = common::scifact::minilm();
    hnsw_vs_flat::run(
        "SciFact all-MiniLM-L6-v2",
        Metric::Cosine,
        &scifact.corpus,
        &scifact.queries,
    );
}
