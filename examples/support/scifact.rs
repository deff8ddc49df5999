//! What the SciFact examples (`scifact_eval`, `fusion_sweep`) share: where the data and the
//! collection are, building the collection once, and the BEIR metrics of a run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use sieve::engine::eval::{Qrels, mrr_at, ndcg_at, read_jsonl, recall_at};
use sieve::engine::{Collection, CollectionConfig, Document};

/// Ranked document ids per query id.
pub type Runs = HashMap<String, Vec<String>>;

/// `SIEVE_SHARED` (default `../shared`)'s SciFact folder, and the collection folder: the first
/// argument, default `target/scifact.sieve`.
pub fn paths() -> (PathBuf, PathBuf) {
    let shared = std::env::var_os("SIEVE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared"));
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/scifact.sieve"));
    (shared.join("data/scifact"), dir)
}

/// Mean nDCG@10, Recall@100 and MRR@10 of `runs` over the queries of `qrels`.
pub fn metrics(qrels: &Qrels, runs: &Runs) -> (f64, f64, f64) {
    let (mut ndcg, mut recall, mut mrr) = (0.0, 0.0, 0.0);
    for (q, judged) in qrels {
        let ranked: Vec<&str> = runs[q].iter().map(String::as_str).collect();
        ndcg += ndcg_at(10, &ranked, judged);
        recall += recall_at(100, &ranked, judged);
        mrr += mrr_at(10, &ranked, judged);
    }
    let n = qrels.len() as f64;
    (ndcg / n, recall / n, mrr / n)
}

/// Opens the collection in `dir`, or creates it there from `data/corpus.jsonl` (the default
/// models encode all 5,183 abstracts).
pub fn open_or_build(dir: &Path, data: &Path) -> Result<Collection, Box<dyn std::error::Error>> {
    if dir.exists() {
        return Ok(Collection::open(dir)?);
    }
    let collection = Collection::create(dir, CollectionConfig::default())?;
    let corpus = read_jsonl(&data.join("corpus.jsonl"))?;
    let docs: Vec<Document> = corpus.into_iter().map(|(id, text)| Document::new(id, text)).collect();
    let bar = progress(docs.len() as u64, "documents");
    let started = Instant::now();
    collection.add_with_progress(docs, &mut |p| {
        bar.set_message(p.stage);
        bar.set_position(p.done as u64);
    })?;
    bar.finish_and_clear();
    eprintln!("indexed SciFact in {:.0} s", started.elapsed().as_secs_f64());
    collection.checkpoint()?;
    Ok(collection)
}

pub fn progress(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = format!("{{msg:>6}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}})");
    bar.set_style(
        ProgressStyle::with_template(&template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}
