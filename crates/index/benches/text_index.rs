//! BM25 full-text index (`TextIndex`, tantivy) on SciFact: 5,183 documents (title + " " +
//! abstract), 1,109 queries.
//!
//! - `build_in_memory` / `build_on_disk`: create, add every document, commit
//! - `search_top10`: every query, top 10 (throughput = queries per second)
//! - `search_top10_filter_10pct`: the same with an allow-set of every tenth document
//!
//! ```sh
//! cargo bench -p sieve-index --bench text_index
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sieve_index::{AllowSet, DocId, TextIndex, TextIndexConfig};

fn build(index: &mut TextIndex, docs: &[(DocId, &str)]) {
    index.add(docs).expect("add");
    index.commit().expect("commit");
}

fn bench(c: &mut Criterion) {
    let data = common::scifact::data();
    let queries: Vec<&str> = data.queries.iter().map(|q| q.text.as_str()).collect();
    let docs = data.docs();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-text-{}", std::process::id()));

    let mut group = c.benchmark_group("text_index");
    group.sample_size(10);
    group.throughput(Throughput::Elements(docs.len() as u64));
    group.bench_function("build_in_memory", |b| {
        b.iter(|| {
            build(
                &mut TextIndex::in_memory(TextIndexConfig::default()).expect("index"),
                &docs,
            )
        })
    });
    group.bench_function("build_on_disk", |b| {
        b.iter(|| {
            let _ = std::fs::remove_dir_all(&dir);
            build(
                &mut TextIndex::create(&dir, TextIndexConfig::default()).expect("index"),
                &docs,
            )
        })
    });
    let _ = std::fs::remove_dir_all(&dir);

    let mut index = TextIndex::in_memory(TextIndexConfig::default()).expect("index");
    build(&mut index, &docs);
    let allow: AllowSet = (0..docs.len() as u32).filter(|i| i % 10 == 0).collect();
    group.sample_size(20);
    group.throughput(Throughput::Elements(queries.len() as u64));
    group.bench_function("search_top10", |b| {
        b.iter(|| {
            queries
                .iter()
                .map(|q| index.search(q, 10, None).expect("search").len())
                .sum::<usize>()
        })
    });
    group.bench_function("search_top10_filter_10pct", |b| {
        b.iter(|| {
            queries
                .iter()
                .map(|q| index.search(q, 10, Some(&allow)).expect("search").len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
