//! Training examples from files: pairs `(anchor, positive)`, triplets `(anchor, positive,
//! negative)` and scored pairs `(sentence1, sentence2, score)`, in JSON Lines or tab-separated
//! form (chosen by the file's extension), and (query, positive document) pairs from a BEIR
//! folder. A malformed line is an error naming the file and the line.
//!
//! JSON Lines take sentence-transformers' column names: `anchor` (or `query`, `sentence1`),
//! `positive` (or `document`, `sentence2`), `negative` and `score` (or `label`). TSV files have
//! the columns in that order and no header.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use sieve_engine::eval::{read_jsonl, read_qrels};

use crate::{Result, TrainError};

/// An anchor (query) and a text that matches it: `MultipleNegativesRankingLoss` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The query or first sentence.
    pub anchor: String,
    /// The matching text.
    pub positive: String,
}

/// A pair and a text that does not match the anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triplet {
    /// The query or first sentence.
    pub anchor: String,
    /// The matching text.
    pub positive: String,
    /// A text that does not match.
    pub negative: String,
}

/// Two sentences and how similar they are: `CoSENTLoss` / `CosineSimilarityLoss` input.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredPair {
    /// The first sentence.
    pub sentence1: String,
    /// The second sentence.
    pub sentence2: String,
    /// Their similarity label (e.g. STSb's 0–5, scaled to 0–1 by the caller).
    pub score: f32,
}

/// Reads `(anchor, positive)` pairs from a `.jsonl` or `.tsv` file.
///
/// ```
/// use sieve_train::data::read_pairs;
///
/// let path = std::env::temp_dir().join(format!("sieve-doc-pairs-{}.jsonl", std::process::id()));
/// std::fs::write(&path, "{\"anchor\": \"what pulls the tides\", \"positive\": \"The moon pulls the sea.\"}\n")?;
/// let pairs = read_pairs(&path)?;
/// assert_eq!(pairs[0].positive, "The moon pulls the sea.");
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_pairs(path: &Path) -> Result<Vec<Pair>> {
    read_rows(path, 2, |row| {
        Ok(Pair {
            anchor: row.text(0, &["anchor", "query", "sentence1"])?,
            positive: row.text(1, &["positive", "document", "sentence2"])?,
        })
    })
}

/// Reads `(anchor, positive, negative)` triplets from a `.jsonl` or `.tsv` file.
pub fn read_triplets(path: &Path) -> Result<Vec<Triplet>> {
    read_rows(path, 3, |row| {
        Ok(Triplet {
            anchor: row.text(0, &["anchor", "query", "sentence1"])?,
            positive: row.text(1, &["positive", "document", "sentence2"])?,
            negative: row.text(2, &["negative"])?,
        })
    })
}

/// Reads `(sentence1, sentence2, score)` rows from a `.jsonl` or `.tsv` file; the score must
/// be a finite number.
pub fn read_scored_pairs(path: &Path) -> Result<Vec<ScoredPair>> {
    read_rows(path, 3, |row| {
        Ok(ScoredPair {
            sentence1: row.text(0, &["sentence1", "anchor", "query"])?,
            sentence2: row.text(1, &["sentence2", "positive", "document"])?,
            score: row.number(2, &["score", "label"])?,
        })
    })
}

/// One line of a data file, as JSON or as TSV columns.
enum Row<'a> {
    Json(Value),
    Tsv(Vec<&'a str>),
}

impl Row<'_> {
    fn field(&self, column: usize, names: &[&str]) -> Result<Value, String> {
        match self {
            Row::Json(value) => names
                .iter()
                .find_map(|name| value.get(*name).filter(|v| !v.is_null()).cloned())
                .ok_or_else(|| match names {
                    [name] => format!("missing `{name}`"),
                    [name, also @ ..] => format!("missing `{name}` (also read from `{}`)", also.join("`, `")),
                    [] => "no column".to_string(),
                }),
            Row::Tsv(cols) => Ok(Value::String(cols[column].to_string())),
        }
    }

    fn text(&self, column: usize, names: &[&str]) -> Result<String, String> {
        match self.field(column, names)? {
            Value::String(s) => Ok(s),
            other => Err(format!("`{}` must be a string, found {other}", names[0])),
        }
    }

    fn number(&self, column: usize, names: &[&str]) -> Result<f32, String> {
        let value = self.field(column, names)?;
        let x = match &value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match x {
            Some(x) if x.is_finite() => Ok(x as f32),
            _ => Err(format!("`{}` must be a finite number, found {value}", names[0])),
        }
    }
}

fn read_rows<T>(path: &Path, columns: usize, parse: impl Fn(&Row<'_>) -> Result<T, String>) -> Result<Vec<T>> {
    let text = std::fs::read_to_string(path).map_err(|e| sieve_engine::EngineError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let tsv = match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "json") => false,
        Some("tsv") => true,
        _ => {
            return Err(TrainError::InvalidOption(format!(
                "{}: expected a .jsonl or .tsv file",
                path.display()
            )));
        }
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| TrainError::Data {
            path: path.to_path_buf(),
            line: n + 1,
            message,
        };
        let row = if tsv {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() != columns {
                return Err(bad(format!(
                    "expected {columns} tab-separated columns, found {}",
                    cols.len()
                )));
            }
            Row::Tsv(cols)
        } else {
            let value: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
            if !value.is_object() {
                return Err(bad(format!("expected a JSON object, found {value}")));
            }
            Row::Json(value)
        };
        out.push(parse(&row).map_err(bad)?);
    }
    Ok(out)
}

/// (query, positive document) pairs of a BEIR folder: `corpus.jsonl`, `queries.jsonl` and the
/// judgments in `qrels` (grade > 0 counts as positive), leaving out every query judged in
/// `exclude` (a held-out split such as SciFact's `qrels/dev.tsv`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BeirPairs {
    /// Query id → query text.
    pub queries: BTreeMap<String, String>,
    /// Query id → ids of its positive documents.
    pub positives: BTreeMap<String, Vec<String>>,
    /// Document id → title + " " + text, for every document of the folder.
    pub corpus: BTreeMap<String, String>,
}

impl BeirPairs {
    /// One [`Pair`] per (query, positive document), in query-id order.
    pub fn pairs(&self) -> Vec<Pair> {
        self.positives
            .iter()
            .flat_map(|(q, docs)| {
                docs.iter().map(move |d| Pair {
                    anchor: self.queries[q].clone(),
                    positive: self.corpus[d].clone(),
                })
            })
            .collect()
    }

    /// Training examples: one per (query, positive), with the query's mined negatives after
    /// the positive (`mined` in [`queries`](Self::queries) order, or empty for none).
    pub fn examples(&self, mined: &[crate::mining::Mined]) -> Vec<crate::trainer::Example> {
        self.positives
            .iter()
            .enumerate()
            .flat_map(|(i, (q, docs))| {
                let negatives: Vec<&str> = mined
                    .get(i)
                    .map(|m| {
                        m.negatives
                            .iter()
                            .filter_map(|(id, _)| self.corpus.get(id).map(String::as_str))
                            .collect()
                    })
                    .unwrap_or_default();
                docs.iter().map(move |d| {
                    crate::trainer::Example::with_negatives(&self.queries[q], &self.corpus[d], &negatives)
                })
            })
            .collect()
    }

    /// `(query text, positive document ids)` per query: the input of
    /// [`mine_hard_negatives`](crate::mining::mine_hard_negatives).
    pub fn queries(&self) -> Vec<(String, Vec<String>)> {
        self.positives
            .iter()
            .map(|(q, docs)| (self.queries[q].clone(), docs.clone()))
            .collect()
    }
}

/// Reads a BEIR folder's training pairs (see [`BeirPairs`]). A judgment naming a query or
/// document the folder lacks is an error naming the qrels file.
///
/// ```no_run
/// use sieve_train::data::beir_pairs;
///
/// let scifact = std::path::Path::new("../shared/data/scifact");
/// let train = beir_pairs(scifact, &scifact.join("qrels/train.tsv"), Some(&scifact.join("qrels/dev.tsv")))?;
/// println!("{} training pairs", train.pairs().len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn beir_pairs(dir: &Path, qrels: &Path, exclude: Option<&Path>) -> Result<BeirPairs> {
    let judged = read_qrels(qrels)?;
    let held_out = exclude.map(read_qrels).transpose()?.unwrap_or_default();
    let queries: BTreeMap<String, String> = read_jsonl(&dir.join("queries.jsonl"))?.into_iter().collect();
    let corpus: BTreeMap<String, String> = read_jsonl(&dir.join("corpus.jsonl"))?.into_iter().collect();
    let mut out = BeirPairs::default();
    for (q, docs) in judged {
        if held_out.contains_key(&q) {
            continue;
        }
        let missing = |what: &str, id: &str| {
            TrainError::InvalidOption(format!(
                "{}: {what} {id:?} is not in {}",
                qrels.display(),
                dir.display()
            ))
        };
        let text = queries.get(&q).ok_or_else(|| missing("query", &q))?;
        let mut positives: Vec<String> = Vec::new();
        for (d, grade) in docs {
            if grade == 0 {
                continue;
            }
            if !corpus.contains_key(&d) {
                return Err(missing("document", &d));
            }
            positives.push(d);
        }
        if !positives.is_empty() {
            positives.sort();
            out.queries.insert(q.clone(), text.clone());
            out.positives.insert(q, positives);
        }
    }
    out.corpus = corpus;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sieve-train-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn jsonl_and_tsv_read_alike() {
        let jsonl = file(
            "t.jsonl",
            "{\"query\": \"q1\", \"positive\": \"p1\", \"negative\": \"n1\"}\n\n{\"anchor\": \"q2\", \"document\": \"p2\", \"negative\": \"n2\"}\n",
        );
        let tsv = file("t.tsv", "q1\tp1\tn1\nq2\tp2\tn2\n");
        assert_eq!(read_triplets(&jsonl).unwrap(), read_triplets(&tsv).unwrap());
        assert_eq!(read_triplets(&tsv).unwrap()[1].negative, "n2");
        let scored = file(
            "s.jsonl",
            "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"score\": 0.5}\n{\"sentence1\": \"a\", \"sentence2\": \"c\", \"label\": \"1\"}\n",
        );
        let rows = read_scored_pairs(&scored).unwrap();
        assert_eq!((rows[0].score, rows[1].score), (0.5, 1.0));
        let pairs = file("p.tsv", "what pulls the tides\tThe moon.\n");
        assert_eq!(read_pairs(&pairs).unwrap()[0].anchor, "what pulls the tides");
    }

    #[test]
    fn malformed_lines_are_named_by_number() {
        let err =
            |name: &str, text: &str, read: fn(&Path) -> Result<usize>| read(&file(name, text)).unwrap_err().to_string();
        let pairs = |p: &Path| read_pairs(p).map(|v| v.len());
        let scored = |p: &Path| read_scored_pairs(p).map(|v| v.len());
        assert!(err("a.tsv", "q\tp\nq only\n", pairs).ends_with("a.tsv:2: expected 2 tab-separated columns, found 1"));
        assert!(
            err(
                "b.jsonl",
                "{\"anchor\": \"q\", \"positive\": \"p\"}\n{\"anchor\": \"q\"\n",
                pairs
            )
            .contains("b.jsonl:2: not JSON")
        );
        assert!(
            err("c.jsonl", "{\"anchor\": \"q\"}\n", pairs)
                .ends_with("c.jsonl:1: missing `positive` (also read from `document`, `sentence2`)")
        );
        assert!(err("d.jsonl", "[1, 2]\n", pairs).ends_with("d.jsonl:1: expected a JSON object, found [1,2]"));
        assert!(
            err("e.jsonl", "{\"anchor\": 3, \"positive\": \"p\"}\n", pairs)
                .ends_with("`anchor` must be a string, found 3")
        );
        assert!(
            err("f.tsv", "a\tb\tNaN\n", scored).ends_with("f.tsv:1: `score` must be a finite number, found \"NaN\"")
        );
        assert!(err("g.csv", "a,b\n", pairs).contains("expected a .jsonl or .tsv file"));
    }
}
