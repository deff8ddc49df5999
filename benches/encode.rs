//! Encoder throughput on the CPU backend.
//!
//! - `encode`: all-MiniLM-L6-v2 on 2,000 texts of 20 words (batch 32)
//! - `predict`: sieve/stsb-minilm-l6-ce on 500 (query, passage) pairs (batch 32)
//!
//! Inputs come from SciFact (`../shared/data/scifact`): text `i` is the first 20 words of
//! document `i` (title + " " + abstract); pair `i` is query `i` with the first 30 words of
//! document `i`. `benches/st_baseline.py` builds the same inputs for sentence-transformers.
//!
//! ```sh
//! cargo bench --bench encode
//! ```

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sieve::{CrossEncoder, EncodeOptions, PredictOptions, SentenceTransformer};

fn scifact(file: &str) -> Vec<serde_json::Value> {
    let shared = std::env::var_os("SIEVE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let path = shared.join("data/scifact").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn first_words(text: &str, n: usize) -> String {
    text.split_whitespace().take(n).collect::<Vec<_>>().join(" ")
}

fn doc_text(doc: &serde_json::Value) -> String {
    format!(
        "{} {}",
        doc["title"].as_str().unwrap_or(""),
        doc["text"].as_str().unwrap_or("")
    )
}

fn bench(c: &mut Criterion) {
    let corpus = scifact("corpus.jsonl");
    let queries = scifact("queries.jsonl");
    let texts: Vec<String> = corpus
        .iter()
        .take(2000)
        .map(|d| first_words(&doc_text(d), 20))
        .collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let pairs: Vec<(String, String)> = queries
        .iter()
        .zip(&corpus)
        .take(500)
        .map(|(q, d)| {
            (
                q["text"].as_str().unwrap_or("").to_string(),
                first_words(&doc_text(d), 30),
            )
        })
        .collect();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();

    let bi = SentenceTransformer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
        .expect("run scripts/fetch-models");
    let ce = CrossEncoder::from_pretrained("sieve/stsb-minilm-l6-ce").expect("run scripts/fetch-models");

    let mut group = c.benchmark_group("cpu");
    group.sample_size(10);
    group.throughput(Throughput::Elements(texts.len() as u64));
    let options = EncodeOptions {
        batch_size: 32,
        ..Default::default()
    };
    group.bench_function("encode_2000_texts_minilm", |b| {
        b.iter(|| bi.encode_with(&texts, &options).unwrap())
    });
    group.throughput(Throughput::Elements(pairs.len() as u64));
    let options = PredictOptions {
        batch_size: 32,
        ..Default::default()
    };
    group.bench_function("predict_500_pairs_stsb_ce", |b| {
        b.iter(|| ce.predict_with(&pairs, &options).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
