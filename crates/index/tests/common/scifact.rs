//! SciFact (BEIR) texts and judgments from `../shared/data/scifact`, and nDCG@k as trec_eval
//! computes it: what BM25 needs (the dense and sparse SciFact vectors need the encoders, so
//! the workspace's tests make them).
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::OnceLock;

pub struct Doc {
    pub id: String,
    /// `title + " " + text`, as BEIR evaluations index it.
    pub text: String,
}

pub struct Query {
    pub id: String,
    pub text: String,
}

/// query id → (corpus id → relevance grade)
pub type Qrels = HashMap<String, HashMap<String, u32>>;

pub struct Scifact {
    pub corpus: Vec<Doc>,
    pub queries: Vec<Query>,
    pub train_qrels: Qrels,
}

impl Scifact {
    /// The corpus as `(position, text)` pairs: position `i` is the id `corpus[i]` is indexed under.
    pub fn docs(&self) -> Vec<(u32, &str)> {
        (0..).zip(self.corpus.iter().map(|d| d.text.as_str())).collect()
    }

    /// Indexes into `queries` of the queries judged in `qrels`, in file order.
    pub fn judged(&self, qrels: &Qrels) -> Vec<usize> {
        (0..self.queries.len())
            .filter(|&i| qrels.contains_key(&self.queries[i].id))
            .collect()
    }
}

pub fn dir() -> PathBuf {
    super::shared().join("data").join("scifact")
}

pub fn data() -> &'static Scifact {
    static DATA: OnceLock<Scifact> = OnceLock::new();
    DATA.get_or_init(|| Scifact {
        corpus: read_jsonl("corpus.jsonl")
            .into_iter()
            .map(|v| Doc {
                id: v["_id"].as_str().expect("_id").to_string(),
                text: format!(
                    "{} {}",
                    v["title"].as_str().unwrap_or(""),
                    v["text"].as_str().unwrap_or("")
                ),
            })
            .collect(),
        queries: read_jsonl("queries.jsonl")
            .into_iter()
            .map(|v| Query {
                id: v["_id"].as_str().expect("_id").to_string(),
                text: v["text"].as_str().expect("text").to_string(),
            })
            .collect(),
        train_qrels: read_qrels("train.tsv"),
    })
}

fn read_jsonl(name: &str) -> Vec<serde_json::Value> {
    let path = dir().join(name);
    let file = fs::File::open(&path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    BufReader::new(file)
        .lines()
        .map(|line| serde_json::from_str(&line.expect("readable line")).expect("JSON line"))
        .collect()
}

fn read_qrels(name: &str) -> Qrels {
    let path = dir().join("qrels").join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut qrels = Qrels::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let mut cols = line.split('\t');
        let (q, d, s) = (cols.next().unwrap(), cols.next().unwrap(), cols.next().unwrap());
        qrels
            .entry(q.to_string())
            .or_default()
            .insert(d.to_string(), s.trim().parse().expect("grade"));
    }
    qrels
}

/// nDCG@k with trec_eval's definitions (gain = grade, discount log2(rank + 1), ideal DCG from the
/// judged documents), as `sieve_engine::eval::ndcg_at` computes it.
pub fn ndcg_at(k: usize, ranked: &[&str], judged: &HashMap<String, u32>) -> f64 {
    let dcg = |grades: &mut dyn Iterator<Item = u32>| -> f64 {
        grades
            .take(k)
            .enumerate()
            .map(|(i, g)| g as f64 / (i as f64 + 2.0).log2())
            .sum()
    };
    let mut ideal: Vec<u32> = judged.values().copied().filter(|&g| g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg = dcg(&mut ideal.into_iter());
    let found = dcg(&mut ranked.iter().map(|id| judged.get(*id).copied().unwrap_or(0)));
    if idcg == 0.0 { 0.0 } else { found / idcg }
}
