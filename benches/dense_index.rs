//! HNSW against exact search, in one run: build time, and queries per second and recall@10 at
//! several `ef_search` values, on ann-benchmarks' random-xs-20 (9,000 × 20, euclidean and
//! angular) and SciFact's all-MiniLM-L6-v2 vectors (5,183 × 384, cosine; encoded once and
//! cached by `tests/common/scifact.rs`). Prints one table; ratios are against `FlatIndex`
//! measured in the same invocation.
//!
//! ```sh
//! cargo bench --bench dense_index
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::ann;
use sieve::index::{DenseIndex, DocId, FlatIndex, HnswIndex, HnswParams, Metric, SearchParams};

const K: usize = 10;

fn insert<I: DenseIndex>(index: &mut I, rows: &[Vec<f32>]) -> Duration {
    let points: Vec<(DocId, &[f32])> = rows
        .iter()
        .enumerate()
        .map(|(i, v)| (i as DocId, v.as_slice()))
        .collect();
    let start = Instant::now();
    index.insert(&points).expect("valid vectors");
    start.elapsed()
}

fn search_all(index: &dyn DenseIndex, queries: &[Vec<f32>], params: &SearchParams) -> Vec<Vec<u32>> {
    queries
        .iter()
        .map(|q| {
            index
                .search(q, K, params, None)
                .expect("valid query")
                .iter()
                .map(|h| h.id)
                .collect()
        })
        .collect()
}

/// Queries per second over whole passes of the query set, for at least half a second.
fn qps(index: &dyn DenseIndex, queries: &[Vec<f32>], params: &SearchParams) -> f64 {
    let (start, mut passes) = (Instant::now(), 0);
    while passes == 0 || start.elapsed() < Duration::from_millis(500) {
        black_box(search_all(index, queries, params));
        passes += 1;
    }
    (passes * queries.len()) as f64 / start.elapsed().as_secs_f64()
}

fn run(name: &str, metric: Metric, train: &[Vec<f32>], queries: &[Vec<f32>]) {
    let dim = train[0].len();
    let mut flat = FlatIndex::new(dim, metric);
    let flat_build = insert(&mut flat, train);
    let exact = search_all(&flat, queries, &SearchParams::default());
    let flat_qps = qps(&flat, queries, &SearchParams::default());
    let mut hnsw = HnswIndex::new(dim, metric, HnswParams::default()).expect("default parameters");
    let build = insert(&mut hnsw, train);
    println!(
        "\n{name}: {} × {dim}, {} queries, {metric:?}",
        train.len(),
        queries.len()
    );
    println!(
        "build: HNSW {:.2} s (M = 16, ef_construction = 200, 2 threads), flat {:.3} s",
        build.as_secs_f64(),
        flat_build.as_secs_f64()
    );
    println!("| index | ef_search | recall@10 | QPS | × flat |\n|---|---|---|---|---|");
    println!("| flat (exact) | - | 1.0000 | {flat_qps:.0} | 1.0 |");
    for ef in [10, 20, 50, 100, 200] {
        let params = SearchParams {
            ef_search: Some(ef),
            exact: false,
        };
        let recall = ann::recall_at(K, &search_all(&hnsw, queries, &params), &exact);
        let q = qps(&hnsw, queries, &params);
        println!("| HNSW | {ef} | {recall:.4} | {q:.0} | {:.1} |", q / flat_qps);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this file once in test mode.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let train = ann::fvecs("train.fvecs");
    let test = ann::fvecs("test.fvecs");
    run("random-xs-20", Metric::Euclidean, &train, &test);
    run("random-xs-20", Metric::Cosine, &train, &test);
    let scifact = common::scifact::minilm();
    run(
        "SciFact all-MiniLM-L6-v2",
        Metric::Cosine,
        &scifact.corpus,
        &scifact.queries,
    );
}
