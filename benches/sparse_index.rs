//! SparseIndex query throughput on SciFact: block-max MaxScore `search` against
//! `brute_force_search`, top 10, over the splade-tiny vectors of all 5,183 documents and
//! 1,109 queries (encoded once and cached by `tests/common/scifact.rs`).
//!
//! Before measuring, the setup checks that both return identical hits for every query, and
//! prints both rates and their ratio; criterion then reports each as queries per second.
//!
//! ```sh
//! cargo bench --bench sparse_index
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::scifact;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sieve::encoders::SparseVector;
use sieve::index::SparseIndex;

const K: usize = 10;

type Search = fn(
    &SparseIndex,
    &[u32],
    &[f32],
    usize,
    Option<&sieve::index::AllowSet>,
) -> sieve::index::Result<Vec<sieve::index::Hit>>;

fn run_all(index: &SparseIndex, queries: &[SparseVector], search: Search) -> usize {
    queries
        .iter()
        .map(|q| {
            search(index, &q.indices, &q.values, K, None)
                .expect("valid query")
                .len()
        })
        .sum()
}

/// Queries per second over whole passes of the query set, for at least `min` of wall time.
fn qps(index: &SparseIndex, queries: &[SparseVector], search: Search, min: Duration) -> f64 {
    let (start, mut passes) = (Instant::now(), 0);
    while passes == 0 || start.elapsed() < min {
        black_box(run_all(index, queries, search));
        passes += 1;
    }
    (passes * queries.len()) as f64 / start.elapsed().as_secs_f64()
}

fn bench(c: &mut Criterion) {
    let vectors = scifact::splade();
    let docs: Vec<(u32, &[u32], &[f32])> = vectors
        .corpus
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u32, v.indices.as_slice(), v.values.as_slice()))
        .collect();
    let mut index = SparseIndex::new(30522);
    index.insert(&docs).expect("valid SPLADE vectors");
    let queries = &vectors.queries;

    for (i, q) in queries.iter().enumerate() {
        let got = index.search(&q.indices, &q.values, K, None).unwrap();
        let want = index.brute_force_search(&q.indices, &q.values, K, None).unwrap();
        let bits = |hits: &[sieve::index::Hit]| hits.iter().map(|h| (h.id, h.score.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "query {i}: search and brute force disagree");
    }
    let nnz = |v: &[SparseVector]| v.iter().map(SparseVector::nnz).sum::<usize>() as f64 / v.len() as f64;
    println!(
        "SciFact: {} documents ({:.0} terms each), {} queries ({:.0} terms each); results identical",
        docs.len(),
        nnz(&vectors.corpus),
        queries.len(),
        nnz(queries)
    );
    let fast = qps(&index, queries, SparseIndex::search, Duration::from_secs(3));
    let slow = qps(&index, queries, SparseIndex::brute_force_search, Duration::from_secs(3));
    println!(
        "search {fast:.0} QPS, brute_force_search {slow:.0} QPS: {:.1}x faster",
        fast / slow
    );

    let mut group = c.benchmark_group("sparse_index_scifact_top10");
    group.throughput(Throughput::Elements(queries.len() as u64));
    group.sample_size(10);
    group.bench_function("search", |b| b.iter(|| run_all(&index, queries, SparseIndex::search)));
    group.bench_function("brute_force_search", |b| {
        b.iter(|| run_all(&index, queries, SparseIndex::brute_force_search))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
