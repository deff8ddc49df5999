//! Ingest and search on SciFact, for each CPU precision, against the encoders alone.
//!
//! For each precision (`SIEVE_BENCH_DTYPES`, default `f32,int8`; bf16 where the CPU has it):
//!
//! 1. **pure encode**: the dense model then the sparse model encode the documents' texts, one
//!    after the other, as `encode()` calls of batch 32: the rate ingest cannot beat without
//!    running both at once;
//! 2. **import**: the same documents go into a new collection (dense + sparse + BM25, the
//!    default models) by `upsert` calls of 512, as `sieve import-beir` does, timed to the end of
//!    `close()`; printed as documents/s and as a ratio to the pure-encode rate;
//! 3. **search**: the default search (hybrid + cross-encoder rerank of 20, fused) for the
//!    SciFact queries of `qrels/dev.tsv` (161; the reranker never saw them), p50 and p95
//!    latency;
//! 4. **quality** on those queries: nDCG@10 of dense search alone and of the default search.
//!    Meaningful on the whole corpus only (`SIEVE_BENCH_DOCS=5183`).
//!
//! ```sh
//! cargo bench --bench ingest                          # first 1,000 documents
//! SIEVE_BENCH_DOCS=5183 cargo bench --bench ingest    # all of SciFact
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::scifact;
use sieve::engine::eval::ndcg_at;
use sieve::engine::{Collection, CollectionConfig, Document};
use sieve::{Dtype, EncodeOptions, LoadOptions, SentenceTransformer, SparseEncodeOptions, SparseEncoder};

const UPSERT_BATCH: usize = 512;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Mean nDCG@10 of `search` over `queries` (id, text), judged by SciFact's dev qrels.
fn ndcg10(queries: &[(&str, &str)], mut search: impl FnMut(&str) -> Vec<String>) -> f64 {
    let qrels = &scifact::data().dev_qrels;
    let total: f64 = queries
        .iter()
        .map(|(id, text)| {
            let ranked = search(text);
            let ranked: Vec<&str> = ranked.iter().map(String::as_str).collect();
            ndcg_at(10, &ranked, &qrels[*id])
        })
        .sum();
    total / queries.len().max(1) as f64
}

fn run(dtype: Dtype, docs: &[&scifact::Doc], queries: &[(&str, &str)]) -> Result<(), sieve::engine::EngineError> {
    let options = LoadOptions {
        dtype,
        ..LoadOptions::default()
    };
    let config = CollectionConfig::default();
    let dense = SentenceTransformer::from_pretrained_with(config.dense.as_deref().unwrap_or_default(), &options)?;
    let sparse = SparseEncoder::from_pretrained_with(config.sparse.as_deref().unwrap_or_default(), &options)?;
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();

    let start = Instant::now();
    dense.encode_with(&texts, &EncodeOptions::default())?;
    let dense_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    sparse.encode_with(&texts, &SparseEncodeOptions::default())?;
    let sparse_s = start.elapsed().as_secs_f64();
    drop((dense, sparse));
    let n = docs.len() as f64;
    let encode_rate = n / (dense_s + sparse_s);

    let dir = std::env::temp_dir().join(format!("sieve-bench-ingest-{dtype}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let start = Instant::now();
    let collection = Collection::create_with(&dir, config, &options)?;
    let load_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for chunk in docs.chunks(UPSERT_BATCH) {
        collection.upsert(
            chunk
                .iter()
                .map(|d| Document::new(d.id.clone(), d.text.clone()))
                .collect(),
        )?;
    }
    collection.close()?;
    let import_s = start.elapsed().as_secs_f64();
    let import_rate = n / import_s;

    let collection = Collection::open(&dir)?;
    let mut latencies = Vec::with_capacity(queries.len());
    let ids = |hits: Vec<sieve::engine::SearchHit>| hits.into_iter().map(|h| h.id).collect::<Vec<_>>();
    let default = ndcg10(queries, |q| {
        let start = Instant::now();
        let hits = collection.search(q).top_k(10).run().expect("search runs");
        latencies.push(start.elapsed().as_secs_f64() * 1e3);
        ids(hits)
    });
    let dense_only = ndcg10(queries, |q| {
        ids(collection
            .search(q)
            .dense()
            .no_rerank()
            .top_k(10)
            .run()
            .expect("search runs"))
    });
    latencies.sort_by(f64::total_cmp);
    drop(collection);
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "{dtype:<5} {:>7.1} {:>7.1} {:>9.1} {:>9.1} {:>6.2}x {:>8.0} {:>8.0} {dense_only:>8.4} {default:>8.4}   (models loaded in {load_s:.1} s)",
        n / dense_s,
        n / sparse_s,
        encode_rate,
        import_rate,
        import_rate / encode_rate,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
    );
    Ok(())
}

fn main() {
    let data = scifact::data();
    let n = env_usize("SIEVE_BENCH_DOCS", 1000).min(data.corpus.len());
    let docs: Vec<&scifact::Doc> = data.corpus.iter().take(n).collect();
    let queries: Vec<(&str, &str)> = data
        .judged(&data.dev_qrels)
        .into_iter()
        .map(|i| (data.queries[i].id.as_str(), data.queries[i].text.as_str()))
        .collect();
    let dtypes = std::env::var("SIEVE_BENCH_DTYPES").unwrap_or_else(|_| "f32,int8".into());
    println!(
        "SciFact, {n} documents, {} dev queries; dense = all-MiniLM-L6-v2, sparse = splade-tiny, rerank 20",
        queries.len()
    );
    println!(
        "dtype  dense/s sparse/s  encode/s  import/s  ratio  p50 ms   p95 ms  nDCG dense  nDCG default\n\
         (encode/s: both models one after the other; import/s: create + upsert + close; ratio = import / encode;\n\
          latency and nDCG@10 of the default search = hybrid + rerank 20; nDCG needs the whole corpus)"
    );
    for name in dtypes.split(',') {
        let dtype: Dtype = match name.parse() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{e}");
                continue;
            }
        };
        if let Err(e) = run(dtype, &docs, &queries) {
            println!("{dtype:<5} skipped: {e}");
        }
    }
}
