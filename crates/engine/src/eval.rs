//! Retrieval evaluation with trec_eval's definitions, on BEIR-format files.
//!
//! `qrels` are `query-id <TAB> corpus-id <TAB> score` lines after a header; queries and corpus
//! are JSON Lines with `_id` and `text` (and `title` for the corpus).

use std::collections::HashMap;
use std::path::Path;

use crate::error::{EngineError, Result};

/// Relevance judgments: query id → (document id → grade).
pub type Qrels = HashMap<String, HashMap<String, u32>>;

/// nDCG@k: gain = grade, discount log2(rank + 1), ideal DCG from the judged documents.
///
/// ```
/// use std::collections::HashMap;
/// use sieve_engine::eval::ndcg_at;
/// let judged = HashMap::from([("d1".to_string(), 1)]);
/// assert_eq!(ndcg_at(10, &["d1", "d2"], &judged), 1.0);
/// assert!((ndcg_at(10, &["d2", "d1"], &judged) - 1.0 / 3f64.log2()).abs() < 1e-12);
/// ```
pub fn ndcg_at(k: usize, ranked: &[&str], judged: &HashMap<String, u32>) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, id)| judged.get(*id).copied().unwrap_or(0) as f64 / (i as f64 + 2.0).log2())
        .sum();
    let mut ideal: Vec<u32> = judged.values().copied().filter(|&g| g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, &g)| g as f64 / (i as f64 + 2.0).log2())
        .sum();
    if idcg == 0.0 { 0.0 } else { dcg / idcg }
}

/// Recall@k: the share of relevant documents found in the first `k`.
///
/// ```
/// use std::collections::HashMap;
/// use sieve_engine::eval::recall_at;
/// let judged = HashMap::from([("a".to_string(), 1), ("b".to_string(), 1)]);
/// assert_eq!(recall_at(1, &["a", "b"], &judged), 0.5);
/// ```
pub fn recall_at(k: usize, ranked: &[&str], judged: &HashMap<String, u32>) -> f64 {
    let relevant = judged.values().filter(|&&g| g > 0).count();
    if relevant == 0 {
        return 0.0;
    }
    let found = ranked
        .iter()
        .take(k)
        .filter(|id| judged.get(**id).is_some_and(|&g| g > 0))
        .count();
    found as f64 / relevant as f64
}

/// MRR@k: reciprocal rank of the first relevant document within `k`, else 0.
///
/// ```
/// use std::collections::HashMap;
/// use sieve_engine::eval::mrr_at;
/// let judged = HashMap::from([("b".to_string(), 1)]);
/// assert_eq!(mrr_at(10, &["a", "b"], &judged), 0.5);
/// ```
pub fn mrr_at(k: usize, ranked: &[&str], judged: &HashMap<String, u32>) -> f64 {
    ranked
        .iter()
        .take(k)
        .position(|id| judged.get(*id).is_some_and(|&g| g > 0))
        .map_or(0.0, |i| 1.0 / (i as f64 + 1.0))
}

/// Reads a BEIR qrels TSV (header line first). A malformed line is an error naming it.
///
/// ```
/// use sieve_engine::eval::{ndcg_at, read_qrels};
///
/// let path = std::env::temp_dir().join(format!("sieve-doc-qrels-{}.tsv", std::process::id()));
/// std::fs::write(&path, "query-id\tcorpus-id\tscore\nq1\td7\t1\nq1\td9\t2\n")?;
/// let qrels = read_qrels(&path)?;
/// assert_eq!(qrels["q1"]["d9"], 2);
/// println!("nDCG@10 {:.3}", ndcg_at(10, &["d9", "d1", "d7"], &qrels["q1"]));
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_qrels(path: &Path) -> Result<Qrels> {
    let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
    let mut qrels = Qrels::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let grade = cols.get(2).and_then(|s| s.trim().parse::<u32>().ok());
        match (cols.len(), grade) {
            (3, Some(grade)) => {
                qrels
                    .entry(cols[0].to_string())
                    .or_default()
                    .insert(cols[1].to_string(), grade);
            }
            _ => {
                return Err(EngineError::InvalidInput(format!(
                    "{}:{}: expected `query-id<TAB>corpus-id<TAB>integer score`, got {line:?}",
                    path.display(),
                    n + 1
                )));
            }
        }
    }
    Ok(qrels)
}

/// Reads BEIR JSON Lines records `{"_id", "text", "title"?}` as `(id, title + " " + text)`.
///
/// ```
/// use sieve_engine::{Document, eval::read_jsonl};
///
/// let path = std::env::temp_dir().join(format!("sieve-doc-corpus-{}.jsonl", std::process::id()));
/// std::fs::write(&path, r#"{"_id": "d7", "title": "Tides", "text": "The moon pulls the sea."}"#)?;
/// let corpus = read_jsonl(&path)?;
/// assert_eq!(corpus[0].1, "Tides The moon pulls the sea.");
/// let docs: Vec<Document> = corpus.into_iter().map(|(id, text)| Document::new(id, text)).collect();
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_jsonl(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| EngineError::InvalidInput(format!("{}:{}: {why}", path.display(), n + 1));
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let id = match &v["_id"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return Err(bad("missing `_id`".into())),
        };
        let body = v["text"].as_str().ok_or_else(|| bad("missing `text`".into()))?;
        let text = match v["title"].as_str() {
            Some(title) if !title.is_empty() => format!("{title} {body}"),
            _ => body.to_string(),
        };
        out.push((id, text));
    }
    Ok(out)
}
