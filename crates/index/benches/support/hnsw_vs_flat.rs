//! The HNSW-against-exact table of the dense benches: build time, and recall@10 and queries per
//! second at several `ef_search` values, with ratios against `FlatIndex` measured in the same
//! run. Shared by this crate's `dense_index` bench (random-xs-20) and the workspace's (SciFact
//! all-MiniLM-L6-v2 vectors, which need the encoder).

use std::hint::black_box;
use std::time::{Duration, Instant};

use sieve_index::{DenseIndex, DocId, FlatIndex, HnswIndex, HnswParams, Metric, SearchParams};

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

pub fn run(name: &str, metric: Metric, train: &[Vec<f32>], queries: &[Vec<f32>]) {
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
        let recall = recall_at(K, &search_all(&hnsw, queries, &params), &exact);
        let q = qps(&hnsw, queries, &params);
        println!("| HNSW | {ef} | {recall:.4} | {q:.0} | {:.1} |", q / flat_qps);
    }
}

/// Mean share of `exact`'s first `k` ids found in `found`'s first `k`.
fn recall_at(k: usize, found: &[Vec<u32>], exact: &[Vec<u32>]) -> f64 {
    let hits: usize = found
        .iter()
        .zip(exact)
        .map(|(f, e)| f.iter().take(k).filter(|id| e[..k.min(e.len())].contains(id)).count())
        .sum();
    hits as f64 / (found.len() * k) as f64
}
