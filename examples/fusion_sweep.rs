//! Which hybrid fusion should be the default? Every fusion method and weighting on SciFact, first
//! stage alone on `qrels/train.tsv` and `qrels/dev.tsv`, and with the fused cross-encoder rerank
//! of the top 20 on dev (the queries the reranker never saw).
//!
//! ```text
//! cargo run --release --example fusion_sweep [-- COLLECTION_DIR]
//! ```
//!
//! The collection is the one `scifact_eval` builds (default `target/scifact.sieve`; built here
//! when absent). Each retriever runs once per query (top 100, as the collection's first stage
//! does); the fusions are computed from those lists with the collection's own [`fuse`], and
//! one of them is checked against `Collection::search` (the same top 100 up to ties).
//! Near-duplicate folding is off so that only the fusion differs. Reranker scores are computed
//! once per (query, document).

#[path = "support/scifact.rs"]
mod scifact;

use std::collections::HashMap;

use scifact::{Runs, metrics, open_or_build, paths};
use sieve::CrossEncoder;
use sieve::engine::eval::{Qrels, read_jsonl, read_qrels};
use sieve::engine::search::DEFAULT_CANDIDATES;
use sieve::engine::{Fusion, Rerank, Retriever, fuse};
use sieve::index::Hit;

/// Per query, each retriever's top `DEFAULT_CANDIDATES` as (document id, score).
type Lists = HashMap<String, Vec<Vec<(String, f32)>>>;

const RETRIEVERS: [Retriever; 3] = [Retriever::Dense, Retriever::Sparse, Retriever::Bm25];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (data, dir) = paths();
    let collection = open_or_build(&dir, &data)?;
    let queries: HashMap<String, String> = read_jsonl(&data.join("queries.jsonl"))?.into_iter().collect();
    let train = read_qrels(&data.join("qrels/train.tsv"))?;
    let dev = read_qrels(&data.join("qrels/dev.tsv"))?;

    let configs: Vec<(String, Fusion, [f32; 3])> = {
        let mut c: Vec<(String, Fusion, [f32; 3])> = [10.0, 30.0, 60.0, 100.0]
            .into_iter()
            .map(|k| (format!("RRF k = {k}"), Fusion::Rrf { k }, [1.0; 3]))
            .collect();
        c.push(("min-max".into(), Fusion::MinMax, [1.0; 3]));
        c.push(("DBSF".into(), Fusion::Dbsf, [1.0; 3]));
        for (fusion, name) in [
            (Fusion::Rrf { k: 60.0 }, "RRF k = 60"),
            (Fusion::MinMax, "min-max"),
            (Fusion::Dbsf, "DBSF"),
        ] {
            c.push((format!("{name}, weights 1 / 1 / 0.5"), fusion, [1.0, 1.0, 0.5]));
            c.push((format!("{name}, weights 2 / 1 / 1"), fusion, [2.0, 1.0, 1.0]));
        }
        c
    };

    let lists = |qrels: &Qrels| -> Result<Lists, sieve::engine::EngineError> {
        let mut out = Lists::new();
        for qid in qrels.keys() {
            let q = &queries[qid];
            let mut per = Vec::new();
            for r in RETRIEVERS {
                let hits = collection
                    .search(q.as_str())
                    .retrievers(&[r])
                    .no_rerank()
                    .keep_duplicates()
                    .top_k(DEFAULT_CANDIDATES)
                    .run()?;
                per.push(hits.into_iter().map(|h| (h.id, h.score)).collect());
            }
            out.insert(qid.clone(), per);
        }
        Ok(out)
    };
    eprintln!(
        "running the three retrievers on {} train and {} dev queries",
        train.len(),
        dev.len()
    );
    let (train_lists, dev_lists) = (lists(&train)?, lists(&dev)?);

    // The check: the sweep's fusion of the default kind is the collection's own hybrid first stage.
    let (qid, _) = dev.iter().next().expect("dev queries");
    let own: Vec<String> = collection
        .search(queries[qid].as_str())
        .hybrid()
        .no_rerank()
        .keep_duplicates()
        .top_k(100)
        .run()?
        .into_iter()
        .map(|h| h.id)
        .collect();
    // Equal fused scores are ordered by internal id in the collection and by first appearance
    // here (which can also swap which of two tied documents is 100th), so the two top 100s
    // are compared as sets, allowing for a tie at the cut.
    let mine = fused(&dev_lists[qid], Fusion::default(), [1.0; 3]);
    let common = mine.iter().filter(|id| own.contains(id)).count();
    assert!(common >= 98, "sweep disagrees with search: {common} of 100 in common");

    let reranker = CrossEncoder::from_pretrained(collection.config().reranker.as_deref().unwrap_or_default())?;
    let mut rerank_scores: HashMap<(String, String), f32> = HashMap::new();
    let texts: HashMap<String, String> = read_jsonl(&data.join("corpus.jsonl"))?.into_iter().collect();

    println!(
        "| fusion | train nDCG@10 | train R@100 | train MRR@10 | dev nDCG@10 | dev R@100 | dev MRR@10 | dev + rerank 20 nDCG@10 | dev + rerank 20 MRR@10 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, fusion, weights) in &configs {
        let run = |l: &Lists| -> Runs {
            l.iter()
                .map(|(q, per)| (q.clone(), fused(per, *fusion, *weights)))
                .collect()
        };
        let (train_run, dev_run) = (run(&train_lists), run(&dev_lists));
        // Rerank the top 20 of each dev query, fused with the first stage (the default mode).
        let mut reranked = HashMap::new();
        for (qid, ids) in &dev_run {
            let n = 20.min(ids.len());
            let missing: Vec<&String> = ids[..n]
                .iter()
                .filter(|id| !rerank_scores.contains_key(&(qid.clone(), (*id).clone())))
                .collect();
            if !missing.is_empty() {
                let pairs: Vec<(&str, &str)> = missing
                    .iter()
                    .map(|id| (queries[qid].as_str(), texts[*id].as_str()))
                    .collect();
                for (id, s) in missing.iter().zip(reranker.predict(&pairs)?) {
                    rerank_scores.insert((qid.clone(), (*id).clone()), s);
                }
            }
            let scores: Vec<f32> = ids[..n]
                .iter()
                .map(|id| rerank_scores[&(qid.clone(), id.clone())])
                .collect();
            let mut order: Vec<String> = Rerank::default()
                .apply(&scores)
                .iter()
                .map(|r| ids[r.candidate].clone())
                .collect();
            order.extend(ids[n..].iter().cloned());
            reranked.insert(qid.clone(), order);
        }
        let (t, d, r) = (
            metrics(&train, &train_run),
            metrics(&dev, &dev_run),
            metrics(&dev, &reranked),
        );
        println!(
            "| {name} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |",
            t.0, t.1, t.2, d.0, d.1, d.2, r.0, r.2
        );
    }

    // The rerank stage re-tuned over the chosen first stage (min-max), on dev.
    println!("\n| rerank of 20 over min-max, dev | nDCG@10 | Recall@100 | MRR@10 |\n|---|---|---|---|");
    let first: Runs = dev_lists
        .iter()
        .map(|(q, per)| (q.clone(), fused(per, Fusion::MinMax, [1.0; 3])))
        .collect();
    let modes = [
        ("replace".to_string(), Rerank::Replace),
        ("fuse w = 0.25".to_string(), Rerank::Fuse { weight: 0.25 }),
        ("fuse w = 0.5".to_string(), Rerank::Fuse { weight: 0.5 }),
        ("fuse w = 0.75".to_string(), Rerank::Fuse { weight: 0.75 }),
        ("fuse w = 1".to_string(), Rerank::Fuse { weight: 1.0 }),
    ];
    for (name, mode) in modes {
        let runs: Runs = first
            .iter()
            .map(|(qid, ids)| {
                let n = 20.min(ids.len());
                let scores: Vec<f32> = ids[..n]
                    .iter()
                    .map(|id| rerank_scores[&(qid.clone(), id.clone())])
                    .collect();
                let mut order: Vec<String> = mode.apply(&scores).iter().map(|r| ids[r.candidate].clone()).collect();
                order.extend(ids[n..].iter().cloned());
                (qid.clone(), order)
            })
            .collect();
        let m = metrics(&dev, &runs);
        println!("| {name} | {:.4} | {:.4} | {:.4} |", m.0, m.1, m.2);
    }
    Ok(())
}

/// The top 100 of `lists` fused by `fusion` with `weights`, as the collection's search does.
fn fused(lists: &[Vec<(String, f32)>], fusion: Fusion, weights: [f32; 3]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let hits: Vec<Vec<Hit>> = lists
        .iter()
        .map(|list| {
            list.iter()
                .map(|(name, score)| {
                    let id = *ids.entry(name.as_str()).or_insert_with(|| {
                        names.push(name.clone());
                        names.len() as u32 - 1
                    });
                    Hit { id, score: *score }
                })
                .collect()
        })
        .collect();
    let weighted: Vec<(&[Hit], f32)> = hits.iter().map(Vec::as_slice).zip(weights).collect();
    fuse(fusion, &weighted)
        .into_iter()
        .take(100)
        .map(|(id, _)| names[id as usize].clone())
        .collect()
}
