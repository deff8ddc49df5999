//! SciFact (BEIR) for retrieval tests: the corpus, queries and judgments from
//! `../shared/data/scifact`, their all-MiniLM-L6-v2 and splade-tiny vectors (encoded once
//! through `sieve::encoders` and cached under the cargo target directory), and the
//! trec_eval metrics the issues quote.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::OnceLock;

use sieve::encoders::{EncodeOptions, SentenceTransformer, SparseEncoder, SparseVector};

pub const DENSE_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";
pub const SPARSE_MODEL: &str = "rasyosef/splade-tiny";

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
    pub dev_qrels: Qrels,
}

impl Scifact {
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
    DATA.get_or_init(|| {
        let corpus = read_jsonl("corpus.jsonl")
            .into_iter()
            .map(|v| {
                let title = v["title"].as_str().unwrap_or("");
                let text = v["text"].as_str().unwrap_or("");
                Doc {
                    id: v["_id"].as_str().expect("_id").to_string(),
                    text: format!("{title} {text}"),
                }
            })
            .collect();
        let queries = read_jsonl("queries.jsonl")
            .into_iter()
            .map(|v| Query {
                id: v["_id"].as_str().expect("_id").to_string(),
                text: v["text"].as_str().expect("text").to_string(),
            })
            .collect();
        Scifact {
            corpus,
            queries,
            train_qrels: read_qrels("train.tsv"),
            dev_qrels: read_qrels("dev.tsv"),
        }
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

pub fn read_qrels(name: &str) -> Qrels {
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

/// trec_eval metrics, from the engine.
#[allow(unused_imports)]
pub use sieve::engine::eval::{mrr_at, ndcg_at, recall_at};

/// Cache files live in the target directory, keyed by model and corpus size.
fn cache_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sieve-scifact-cache");
    fs::create_dir_all(&dir).expect("create cache dir");
    dir.join(name)
}

pub struct DenseVectors {
    pub dim: usize,
    pub corpus: Vec<Vec<f32>>,
    pub queries: Vec<Vec<f32>>,
}

/// all-MiniLM-L6-v2 embeddings (normalised, as the model's pipeline returns them).
pub fn minilm() -> &'static DenseVectors {
    static CACHE: OnceLock<DenseVectors> = OnceLock::new();
    CACHE.get_or_init(|| {
        let data = data();
        let path = cache_path(&format!("minilm-{}-{}.f32", data.corpus.len(), data.queries.len()));
        let rows = read_dense(&path).unwrap_or_else(|| {
            let model = SentenceTransformer::from_pretrained(DENSE_MODEL)
                .unwrap_or_else(|e| panic!("{}: {e}", super::hub_hint()));
            let texts: Vec<&str> = data
                .corpus
                .iter()
                .map(|d| d.text.as_str())
                .chain(data.queries.iter().map(|q| q.text.as_str()))
                .collect();
            eprintln!(
                "encoding {} SciFact texts with {DENSE_MODEL} (cached afterwards in {})",
                texts.len(),
                path.display()
            );
            let opts = EncodeOptions {
                show_progress_bar: true,
                ..Default::default()
            };
            let emb = model.encode_with(&texts, &opts).expect("encode SciFact");
            let rows = emb.to_vec();
            write_dense(&path, &rows);
            rows
        });
        let dim = rows[0].len();
        let mut corpus = rows;
        let queries = corpus.split_off(data.corpus.len());
        DenseVectors { dim, corpus, queries }
    })
}

pub struct SparseVectors {
    pub corpus: Vec<SparseVector>,
    pub queries: Vec<SparseVector>,
}

/// splade-tiny sparse vectors.
pub fn splade() -> &'static SparseVectors {
    static CACHE: OnceLock<SparseVectors> = OnceLock::new();
    CACHE.get_or_init(|| {
        let data = data();
        let path = cache_path(&format!(
            "splade-tiny-{}-{}.sparse",
            data.corpus.len(),
            data.queries.len()
        ));
        let rows = read_sparse(&path).unwrap_or_else(|| {
            let model =
                SparseEncoder::from_pretrained(SPARSE_MODEL).unwrap_or_else(|e| panic!("{}: {e}", super::hub_hint()));
            let texts: Vec<&str> = data
                .corpus
                .iter()
                .map(|d| d.text.as_str())
                .chain(data.queries.iter().map(|q| q.text.as_str()))
                .collect();
            eprintln!(
                "encoding {} SciFact texts with {SPARSE_MODEL} (cached afterwards in {})",
                texts.len(),
                path.display()
            );
            let opts = sieve::encoders::SparseEncodeOptions {
                show_progress_bar: true,
                ..Default::default()
            };
            let rows = model.encode_with(&texts, &opts).expect("encode SciFact").into_rows();
            write_sparse(&path, &rows);
            rows
        });
        let mut corpus = rows;
        let queries = corpus.split_off(data.corpus.len());
        SparseVectors { corpus, queries }
    })
}

// Cache layout: u32 rows, u32 dim, then rows × dim f32, little endian. Written to a temporary
// name and renamed, so concurrent test binaries never read a half-written file.
fn write_dense(path: &PathBuf, rows: &[Vec<f32>]) {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&(rows[0].len() as u32).to_le_bytes());
    for row in rows {
        row.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
    }
    write_renamed(path, &bytes);
}

fn read_dense(path: &PathBuf) -> Option<Vec<Vec<f32>>> {
    let bytes = fs::read(path).ok()?;
    let mut words = bytes.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]);
    let n = u32::from_le_bytes(words.next()?) as usize;
    let dim = u32::from_le_bytes(words.next()?) as usize;
    if bytes.len() != 8 + n * dim * 4 {
        return None;
    }
    let flat: Vec<f32> = words.map(f32::from_le_bytes).collect();
    Some(flat.chunks_exact(dim).map(<[f32]>::to_vec).collect())
}

// Sparse layout: u32 rows, then per row u32 nnz, nnz u32 indices, nnz f32 values.
fn write_sparse(path: &PathBuf, rows: &[SparseVector]) {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for row in rows {
        bytes.extend_from_slice(&(row.indices.len() as u32).to_le_bytes());
        row.indices
            .iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
        row.values
            .iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
    }
    write_renamed(path, &bytes);
}

fn read_sparse(path: &PathBuf) -> Option<Vec<SparseVector>> {
    let bytes = fs::read(path).ok()?;
    let mut words = bytes.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]);
    let n = u32::from_le_bytes(words.next()?) as usize;
    let mut rows = Vec::with_capacity(n);
    for _ in 0..n {
        let nnz = u32::from_le_bytes(words.next()?) as usize;
        let indices: Vec<u32> = (0..nnz)
            .map(|_| words.next().map(u32::from_le_bytes))
            .collect::<Option<_>>()?;
        let values: Vec<f32> = (0..nnz)
            .map(|_| words.next().map(f32::from_le_bytes))
            .collect::<Option<_>>()?;
        rows.push(SparseVector { indices, values });
    }
    words.next().is_none().then_some(rows)
}

fn write_renamed(path: &PathBuf, bytes: &[u8]) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, bytes).expect("write cache");
    fs::rename(&tmp, path).expect("rename cache");
}
