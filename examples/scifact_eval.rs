//! Retrieval quality on SciFact (BEIR), end to end through a `Collection`: every retriever,
//! hybrid fusion, and the cross-encoder rerank stage.
//!
//! ```text
//! cargo run --release --example scifact_eval [-- COLLECTION_DIR]
//! ```
//!
//! The first run creates the collection (default `target/scifact.sieve`) and encodes the
//! 5,183 abstracts with all-MiniLM-L6-v2 and splade-tiny; later runs reopen it.
//! First-stage rows are measured on the train queries (`qrels/train.tsv`); rerank rows only
//! on `qrels/dev.tsv`, the train queries the reranker was not trained on.

#[path = "support/scifact.rs"]
mod scifact;

use std::collections::HashMap;
use std::time::Instant;

use scifact::{Runs, metrics, open_or_build, paths, progress};
use sieve::CrossEncoder;
use sieve::engine::eval::{Qrels, read_jsonl, read_qrels};
use sieve::engine::{Fusion, Rerank, Retriever};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (data, dir) = paths();
    let collection = open_or_build(&dir, &data)?;
    let queries: HashMap<String, String> = read_jsonl(&data.join("queries.jsonl"))?.into_iter().collect();
    let train = read_qrels(&data.join("qrels/train.tsv"))?;
    let dev = read_qrels(&data.join("qrels/dev.tsv"))?;

    let all = [Retriever::Dense, Retriever::Sparse, Retriever::Bm25];
    println!("\n## First stage, SciFact train ({} queries)\n", train.len());
    println!("| ranking | nDCG@10 | Recall@100 | MRR@10 |\n|---|---|---|---|");
    let first_stage: [(&str, &[Retriever], Fusion); 6] = [
        ("dense (all-MiniLM-L6-v2)", &[Retriever::Dense], Fusion::default()),
        ("sparse (splade-tiny)", &[Retriever::Sparse], Fusion::default()),
        ("BM25", &[Retriever::Bm25], Fusion::default()),
        ("hybrid, RRF k = 60", &all, Fusion::Rrf { k: 60.0 }),
        ("hybrid, min-max (default)", &all, Fusion::MinMax),
        ("hybrid, DBSF", &all, Fusion::Dbsf),
    ];
    for (name, retrievers, fusion) in first_stage {
        let runs = run_all(&train, &queries, |_, q| {
            let hits = collection
                .search(q)
                .retrievers(retrievers)
                .fusion(fusion)
                .no_rerank()
                .top_k(100)
                .run()?;
            Ok(hits.into_iter().map(|h| h.id).collect())
        })?;
        row(name, &train, &runs);
    }

    if collection.config().reranker.is_none() {
        println!("\n(no reranker configured: rerank rows skipped)");
        return Ok(());
    }
    println!(
        "\n## Rerank stage over the default hybrid (min-max) first stage, SciFact dev ({} queries)\n",
        dev.len()
    );
    println!("| ranking | depth | nDCG@10 | Recall@100 | MRR@10 |\n|---|---|---|---|---|");
    let started = Instant::now();
    // Score the first stage's top 100 once per query; every depth and mode below reorders
    // those scores with the same `Rerank::apply` the collection's rerank stage uses.
    let reranker = CrossEncoder::from_pretrained(collection.config().reranker.as_deref().unwrap_or_default())?;
    let mut first = Runs::new();
    let mut scores: HashMap<String, Vec<f32>> = HashMap::new();
    run_all(&dev, &queries, |qid, q| {
        let hits = collection.search(q).hybrid().no_rerank().top_k(100).run()?;
        let pairs: Vec<(&str, &str)> = hits.iter().map(|h| (q, h.text.as_str())).collect();
        scores.insert(qid.to_string(), reranker.predict(&pairs)?);
        first.insert(qid.to_string(), hits.iter().map(|h| h.id.clone()).collect());
        Ok(Vec::new())
    })?;
    row("| hybrid first stage alone | - ", &dev, &first);
    for depth in [20, 100] {
        let modes = [
            ("replace", Rerank::Replace),
            ("fuse w = 0.25", Rerank::Fuse { weight: 0.25 }),
            ("fuse w = 0.5", Rerank::Fuse { weight: 0.5 }),
            ("fuse w = 0.75 (default)", Rerank::Fuse { weight: 0.75 }),
            ("fuse w = 1", Rerank::Fuse { weight: 1.0 }),
        ];
        for (name, mode) in modes {
            let runs: Runs = first
                .iter()
                .map(|(qid, ids)| {
                    let n = depth.min(ids.len());
                    let mut reranked: Vec<String> = mode
                        .apply(&scores[qid][..n])
                        .iter()
                        .map(|r| ids[r.candidate].clone())
                        .collect();
                    reranked.extend(ids[n..].iter().cloned());
                    (qid.clone(), reranked)
                })
                .collect();
            row(&format!("| rerank, {name} | {depth} "), &dev, &runs);
        }
    }
    // The collection's own rerank stage must give the same ranking as the computation above.
    let (qid, ids) = first.iter().next().expect("dev queries");
    let own: Vec<String> = collection
        .search(&queries[qid])
        .rerank(20)
        .top_k(100)
        .run()?
        .into_iter()
        .map(|h| h.id)
        .collect();
    let mut expected: Vec<String> = Rerank::default()
        .apply(&scores[qid][..20.min(ids.len())])
        .iter()
        .map(|r| ids[r.candidate].clone())
        .collect();
    expected.extend(ids[20.min(ids.len())..].iter().cloned());
    assert_eq!(own, expected, "Collection's rerank stage disagrees with Rerank::apply");
    eprintln!("rerank rows took {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn run_all(
    qrels: &Qrels,
    queries: &HashMap<String, String>,
    mut search: impl FnMut(&str, &str) -> Result<Vec<String>, sieve::engine::EngineError>,
) -> Result<Runs, sieve::engine::EngineError> {
    let mut ids: Vec<&String> = qrels.keys().collect();
    ids.sort();
    let bar = progress(ids.len() as u64, "queries");
    let mut runs = Runs::new();
    for id in ids {
        runs.insert(id.clone(), search(id, &queries[id])?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(runs)
}

fn row(name: &str, qrels: &Qrels, runs: &Runs) {
    let (ndcg, recall, mrr) = metrics(qrels, runs);
    let label = if name.starts_with('|') {
        name.to_string()
    } else {
        format!("| {name} ")
    };
    println!("{label}| {ndcg:.4} | {recall:.4} | {mrr:.4} |");
}
