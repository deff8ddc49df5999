//! sieve against sentence-transformers / PyTorch and ONNX Runtime on the same inputs, in one
//! invocation.
//!
//! Each workload is run by every backend in turn: sieve in this process (f32, int8, and bf16 where
//! the CPU can load it), and in a Python child (`benches/st_worker.py`, models loaded once)
//! sentence-transformers on PyTorch f32 plus, for the bi- and cross-encoders, ONNX Runtime f32
//! and dynamic int8 (all-MiniLM-L6-v2 and the cross-encoders exported with `torch.onnx.export`
//! and quantized with `quantize_dynamic(per_channel=True, weight_type=QInt8)`, once, into
//! `SIEVE_BENCH_ONNX_DIR`, default `$TMPDIR/sieve-bench-onnx`). Every run is one end-to-end call,
//! tokenization included. After one untimed warm-up per backend, the rounds alternate the
//! backends' order; per workload the bench prints each backend's median items/s, its ratio to
//! PyTorch f32, sieve's ratio to ONNX Runtime at the same precision, and each backend's max |diff|
//! to PyTorch on the first 64 inputs (embeddings, scores, SPLADE weights), then a summary table.
//! Inputs come from SciFact (`../shared/data/scifact`; a document is title + " " + abstract),
//! batch 32:
//!
//! - `short` (or `encode`): all-MiniLM-L6-v2 on the first 20 words of documents 0..2000
//! - `long`: all-MiniLM-L6-v2 on whole documents (truncated at 256 tokens)
//! - `predict`: sieve/stsb-minilm-l6-ce on (query i, first 30 words of document i), i < 500
//! - `rerank`: sieve/scifact-minilm-l6-reranker on (query i, whole document i), 256 tokens a pair
//! - `splade`: rasyosef/splade-tiny on whole documents (truncated at 512 tokens)
//!
//! ```sh
//! SIEVE_PYTHON=/path/to/venv/bin/python cargo bench --bench compare_st
//! ```
//! `SIEVE_PYTHON` (default `python3`) needs `torch` and `sentence-transformers`, and `onnxruntime`
//! and `onnx` for the ONNX Runtime columns: nothing is installed here; what is missing is printed
//! with the command that installs it, and sieve's own figures are printed regardless.
//!
//! - `SIEVE_BENCH_ONLY=short,long,predict,rerank,splade` picks workloads (default all)
//! - `SIEVE_BENCH_ROUNDS` sets the timed rounds (default 5 for short and predict, 3 for the rest)
//! - `SIEVE_BENCH_DOCS` sets how many documents long, rerank and splade take (default 300)
//! - `SIEVE_BENCH_DTYPES` sets sieve's precisions (default `f32,int8,bf16` on the CPU, a column
//!   each; one the CPU cannot load, e.g. bf16 without AVX-512 BF16, is skipped with the reason)
//! - `SIEVE_BENCH_THREADS` sets PyTorch's and ONNX Runtime's threads, and sieve's through
//!   `RAYON_NUM_THREADS` unless that is set (default: every core)
//!
//! On a GPU, `SIEVE_DEVICE` / `SIEVE_DTYPE` pick sieve's device and float type (build with the
//! matching feature), and sentence-transformers runs on `cuda` when `SIEVE_DEVICE` is not `cpu`
//! and PyTorch sees a GPU (ONNX Runtime is then skipped). `SIEVE_KERNEL` (read once per process)
//! applies to every sieve column.
//! ```sh
//! SIEVE_DEVICE=wgpu cargo bench --features wgpu --bench compare_st
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use common::scifact;
use serde_json::{Value, json};
use sieve::{
    CrossEncoder, Device, Dtype, EncodeOptions, LoadOptions, PredictOptions, SentenceTransformer, SparseEncodeOptions,
    SparseEncoder, SparseVector,
};

const BATCH_SIZE: usize = 32;
/// Outputs compared with PyTorch's.
const DIFF_ROWS: usize = 64;
const WORKLOADS: [&str; 5] = ["short", "long", "predict", "rerank", "splade"];

fn first_words(text: &str, n: usize) -> String {
    text.split_whitespace().take(n).collect::<Vec<_>>().join(" ")
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// A bi-encoder's embeddings.
    Dense,
    /// A cross-encoder's scores.
    Cross,
    /// SPLADE weights.
    Sparse,
}

enum Items {
    Texts(Vec<String>),
    Pairs(Vec<(String, String)>),
}

struct Workload {
    name: &'static str,
    kind: Kind,
    model: &'static str,
    /// Items in words, e.g. "SciFact documents (title + abstract)".
    what: &'static str,
    items: Items,
    rounds: usize,
}

impl Workload {
    fn len(&self) -> usize {
        match &self.items {
            Items::Texts(t) => t.len(),
            Items::Pairs(p) => p.len(),
        }
    }

    /// What the worker needs to run it.
    fn json(&self) -> Value {
        let kind = match self.kind {
            Kind::Dense => "dense",
            Kind::Cross => "cross",
            Kind::Sparse => "sparse",
        };
        match &self.items {
            Items::Texts(texts) => json!({"kind": kind, "model": self.model, "texts": texts}),
            Items::Pairs(pairs) => json!({"kind": kind, "model": self.model, "pairs": pairs}),
        }
    }
}

fn workloads(only: &[&str]) -> Vec<Workload> {
    let scifact = scifact::data();
    let docs = env_usize("SIEVE_BENCH_DOCS")
        .unwrap_or(300)
        .min(scifact.corpus.len())
        .min(scifact.queries.len());
    let rounds = |default| env_usize("SIEVE_BENCH_ROUNDS").unwrap_or(default).max(1);
    let texts = |n: usize, words: Option<usize>| -> Vec<String> {
        let text = |t: &str| words.map_or_else(|| t.to_string(), |w| first_words(t, w));
        scifact.corpus.iter().take(n).map(|d| text(&d.text)).collect()
    };
    let pairs = |n: usize, words: Option<usize>| -> Vec<(String, String)> {
        let queries = scifact.queries.iter().map(|q| q.text.clone());
        queries.zip(texts(n, words)).collect()
    };
    let minilm = "sentence-transformers/all-MiniLM-L6-v2";
    let all = [
        (
            "short",
            Kind::Dense,
            minilm,
            "texts (first 20 words of SciFact documents)",
        ),
        ("long", Kind::Dense, minilm, "SciFact documents (title + abstract)"),
        (
            "predict",
            Kind::Cross,
            "sieve/stsb-minilm-l6-ce",
            "pairs (SciFact query, first 30 words of a document)",
        ),
        (
            "rerank",
            Kind::Cross,
            "sieve/scifact-minilm-l6-reranker",
            "pairs (SciFact query, whole document)",
        ),
        (
            "splade",
            Kind::Sparse,
            "rasyosef/splade-tiny",
            "SciFact documents (title + abstract)",
        ),
    ];
    all.into_iter()
        .filter(|(name, ..)| only.contains(name))
        .map(|(name, kind, model, what)| {
            let (items, rounds) = match name {
                "short" => (Items::Texts(texts(2000, Some(20))), rounds(5)),
                "predict" => (Items::Pairs(pairs(500, Some(30))), rounds(5)),
                "rerank" => (Items::Pairs(pairs(docs, None)), rounds(3)),
                _ => (Items::Texts(texts(docs, None)), rounds(3)),
            };
            Workload {
                name,
                kind,
                model,
                what,
                items,
                rounds,
            }
        })
        .collect()
}

/// What a backend answered for the first inputs: embedding rows or scores (rows of one), or
/// SPLADE vectors.
enum Outputs {
    Rows(Vec<Vec<f32>>),
    Sparse(Vec<SparseVector>),
}

impl Outputs {
    /// Largest absolute difference; NaN when the shapes differ.
    fn max_diff(&self, reference: &Outputs) -> f32 {
        let rows = |a: &[Vec<f32>], b: &[Vec<f32>]| {
            if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.len() != y.len()) {
                return f32::NAN;
            }
            let diffs = a
                .iter()
                .zip(b)
                .flat_map(|(x, y)| x.iter().zip(y).map(|(x, y)| (x - y).abs()));
            diffs.fold(0.0, f32::max)
        };
        match (self, reference) {
            (Outputs::Rows(a), Outputs::Rows(b)) => rows(a, b),
            (Outputs::Sparse(a), Outputs::Sparse(b)) => {
                let dim = a
                    .iter()
                    .chain(b)
                    .flat_map(|v| v.indices.iter().max())
                    .max()
                    .map_or(0, |&i| i as usize + 1);
                let dense = |v: &[SparseVector]| v.iter().map(|v| v.to_dense(dim)).collect::<Vec<_>>();
                rows(&dense(a), &dense(b))
            }
            _ => f32::NAN,
        }
    }

    /// The worker's JSON: rows or scores, or `[indices, values]` per SPLADE vector.
    fn from_json(kind: Kind, value: &Value) -> Self {
        let list = value.as_array().expect("worker outputs: a list");
        let f32s = |v: &Value| -> Vec<f32> {
            match v.as_array() {
                Some(xs) => xs.iter().map(|x| x.as_f64().expect("number") as f32).collect(),
                None => vec![v.as_f64().expect("number") as f32],
            }
        };
        match kind {
            Kind::Sparse => Outputs::Sparse(
                list.iter()
                    .map(|row| SparseVector {
                        indices: row[0]
                            .as_array()
                            .expect("indices")
                            .iter()
                            .map(|i| i.as_u64().expect("id") as u32)
                            .collect(),
                        values: f32s(&row[1]),
                    })
                    .collect(),
            ),
            _ => Outputs::Rows(list.iter().map(f32s).collect()),
        }
    }
}

/// One end-to-end call of a sieve model on every item: its seconds and its first `keep` outputs.
type SieveRun = Box<dyn Fn(&Items, usize) -> (f64, Outputs)>;

/// A sieve model as a [`SieveRun`], and its token limit.
fn load_sieve(kind: Kind, model: &str, options: &LoadOptions) -> Result<(SieveRun, usize), sieve::EncoderError> {
    fn texts(items: &Items) -> Vec<&str> {
        match items {
            Items::Texts(t) => t.iter().map(String::as_str).collect(),
            Items::Pairs(_) => unreachable!("a text workload"),
        }
    }
    fn rows(e: sieve::Embeddings, start: Instant, keep: usize) -> (f64, Outputs) {
        let seconds = start.elapsed().as_secs_f64();
        (
            seconds,
            Outputs::Rows(e.rows().take(keep).map(<[f32]>::to_vec).collect()),
        )
    }
    Ok(match kind {
        Kind::Dense => {
            let m = SentenceTransformer::from_pretrained_with(model, options)?;
            let max_tokens = m.max_seq_length();
            let encode = EncodeOptions {
                batch_size: BATCH_SIZE,
                ..Default::default()
            };
            let run: SieveRun = Box::new(move |items: &Items, keep: usize| {
                let texts = texts(items);
                let start = Instant::now();
                rows(m.encode_with(&texts, &encode).expect("encode"), start, keep)
            });
            (run, max_tokens)
        }
        Kind::Cross => {
            let m = CrossEncoder::from_pretrained_with(model, options)?;
            let max_tokens = m.max_length();
            let predict = PredictOptions {
                batch_size: BATCH_SIZE,
                ..Default::default()
            };
            let run: SieveRun = Box::new(move |items: &Items, keep: usize| {
                let Items::Pairs(pairs) = items else {
                    unreachable!("a pair workload")
                };
                let pairs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
                let start = Instant::now();
                rows(m.predict_with(&pairs, &predict).expect("predict"), start, keep)
            });
            (run, max_tokens)
        }
        Kind::Sparse => {
            let m = SparseEncoder::from_pretrained_with(model, options)?;
            let max_tokens = m.max_seq_length();
            let splade = SparseEncodeOptions {
                batch_size: BATCH_SIZE,
                ..Default::default()
            };
            let run: SieveRun = Box::new(move |items: &Items, keep: usize| {
                let texts = texts(items);
                let start = Instant::now();
                let e = m.encode_with(&texts, &splade).expect("splade");
                let seconds = start.elapsed().as_secs_f64();
                (seconds, Outputs::Sparse(e.rows().iter().take(keep).cloned().collect()))
            });
            (run, max_tokens)
        }
    })
}

/// The Python side: what it runs, or why it is not there.
struct StWorker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Workload → the worker's backends for it (`torch`, `ort-f32`, `ort-int8`).
    backends: HashMap<String, Vec<String>>,
    torch_label: String,
}

impl StWorker {
    fn start(inputs: &Path) -> Result<Self, String> {
        let python = std::env::var("SIEVE_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/st_worker.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(inputs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {python}: {e} (set SIEVE_PYTHON)"))?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        let Some(ready) = line.strip_prefix("ready ") else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(match line.strip_prefix("missing ") {
                Some(missing) => format!(
                    "{python} lacks {}; nothing is installed here: to compare, run \
                     `{python} -m pip install torch sentence-transformers onnxruntime onnx` and set SIEVE_PYTHON",
                    missing.split_whitespace().collect::<Vec<_>>().join(", ")
                ),
                None => format!("the worker stopped before it was ready ({python}: its error is above)"),
            });
        };
        let ready: Value = serde_json::from_str(ready).map_err(|e| format!("worker said {line:?}: {e}"))?;
        let versions = ready["versions"].as_object().into_iter().flatten();
        let versions: Vec<String> = versions
            .map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or("?")))
            .collect();
        println!(
            "python worker: {} on {}, {} threads",
            versions.join(", "),
            ready["device"].as_str().unwrap_or("?"),
            ready["threads"]
        );
        for note in ready["notes"].as_array().into_iter().flatten() {
            println!("python worker: {}", note.as_str().unwrap_or_default());
        }
        if let Some(missing) = ready["ort_missing"].as_array().filter(|m| !m.is_empty()) {
            let missing: Vec<&str> = missing.iter().flat_map(Value::as_str).collect();
            println!(
                "python worker: for the ONNX Runtime columns run `{python} -m pip install {}` (nothing is installed here)",
                missing.join(" ")
            );
        }
        let backends = ready["backends"].as_object().expect("worker backends");
        let backends = backends
            .iter()
            .map(|(w, b)| {
                (
                    w.clone(),
                    b.as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(Value::as_str)
                        .map(String::from)
                        .collect(),
                )
            })
            .collect();
        let torch_label = format!("PyTorch {}", ready["torch_dtype"].as_str().unwrap_or("f32"));
        Ok(Self {
            child,
            stdin,
            stdout,
            backends,
            torch_label,
        })
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("worker stdin");
        self.stdin.flush().expect("worker stdin");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("worker stdout");
        assert!(
            !line.is_empty(),
            "the worker stopped on `{command}` (its error is above)"
        );
        line
    }

    fn warmup(&mut self, workload: &Workload, backend: &str) -> Outputs {
        let line = self.ask(&format!("warmup {} {backend} {DIFF_ROWS}", workload.name));
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("worker said {line:?}: {e}"));
        Outputs::from_json(workload.kind, &value)
    }

    fn run(&mut self, workload: &str, backend: &str) -> f64 {
        let line = self.ask(&format!("run {workload} {backend}"));
        line.trim().parse().unwrap_or_else(|_| panic!("worker said {line:?}"))
    }

    fn label(&self, backend: &str) -> String {
        match backend {
            "torch" => self.torch_label.clone(),
            "ort-f32" => "ORT f32".into(),
            "ort-int8" => "ORT int8".into(),
            other => other.into(),
        }
    }
}

impl Drop for StWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Backend {
    /// The worker's id for it.
    Python(String),
    Sieve(SieveRun),
}

/// One backend's figures on one workload.
struct Measured {
    label: String,
    rate: f64,
    diff: Option<f32>,
}

/// The precisions sieve runs in, from `SIEVE_BENCH_DTYPES`: by default f32, int8 and bf16 on the
/// CPU, and on a GPU the one `SIEVE_DTYPE` names.
fn sieve_options() -> Vec<LoadOptions> {
    let load = LoadOptions::from_env().unwrap_or_else(|e| panic!("{e}"));
    let names = std::env::var("SIEVE_BENCH_DTYPES").unwrap_or_else(|_| match load.device {
        Device::Cpu => "f32,int8,bf16".into(),
        _ => load.dtype.to_string(),
    });
    let dtypes = names.split(',').map(str::trim).filter(|n| !n.is_empty());
    dtypes
        .map(|name| {
            let dtype = name.parse().unwrap_or_else(|e| panic!("SIEVE_BENCH_DTYPES: {e}"));
            LoadOptions { dtype, ..load.clone() }
        })
        .collect()
}

/// Warm-up, diffs and timed rounds of one workload on the given backends.
fn measure(w: &Workload, backends: &[(String, Backend)], st: &mut Option<StWorker>) -> Vec<Measured> {
    let mut outputs = Vec::new();
    for (_, backend) in backends {
        outputs.push(match backend {
            Backend::Python(id) => st.as_mut().expect("worker").warmup(w, id),
            Backend::Sieve(run) => run(&w.items, DIFF_ROWS).1,
        });
    }
    let reference = backends
        .iter()
        .position(|(_, b)| matches!(b, Backend::Python(id) if id == "torch"));
    let mut seconds = vec![Vec::new(); backends.len()];
    for round in 0..w.rounds {
        let mut order: Vec<usize> = (0..backends.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            seconds[i].push(match &backends[i].1 {
                Backend::Python(id) => st.as_mut().expect("worker").run(w.name, id),
                Backend::Sieve(run) => run(&w.items, 0).0,
            });
        }
    }
    backends
        .iter()
        .zip(seconds)
        .zip(&outputs)
        .map(|(((label, _), s), out)| Measured {
            label: label.clone(),
            rate: w.len() as f64 / median(s),
            diff: reference.map(|r| out.max_diff(&outputs[r])),
        })
        .collect()
}

fn rate_of(figures: &[Measured], label: &str) -> Option<f64> {
    figures.iter().find(|m| m.label == label).map(|m| m.rate)
}

fn print_workload(w: &Workload, max_tokens: Option<usize>, figures: &[Measured], torch: &str) {
    let tokens = max_tokens.map(|t| format!(", ≤{t} tokens")).unwrap_or_default();
    println!(
        "\n{}: {} on {} {}{tokens}; batch {BATCH_SIZE}, median of {} rounds",
        w.name,
        w.model,
        w.len(),
        w.what,
        w.rounds
    );
    let reference = rate_of(figures, torch);
    println!(
        "  {:<12} {:>10} {:>10} {:>12}",
        "backend", "items/s", "×PyTorch", "max|diff|"
    );
    for m in figures {
        let ratio = reference.map_or("-".into(), |r| format!("{:.2}×", m.rate / r));
        let diff = match m.diff {
            _ if m.label == torch => "ref".into(),
            Some(d) => format!("{d:.1e}"),
            None => "-".into(),
        };
        println!("  {:<12} {:>10.1} {:>10} {:>12}", m.label, m.rate, ratio, diff);
    }
    let mut versus = Vec::new();
    for precision in ["f32", "int8"] {
        let ours = rate_of(figures, &format!("sieve {precision}"));
        if let (Some(ours), Some(theirs)) = (ours, rate_of(figures, &format!("ORT {precision}"))) {
            versus.push(format!("sieve {precision} / ORT {precision}: {:.2}×", ours / theirs));
        }
    }
    if !versus.is_empty() {
        println!("  {}", versus.join("   "));
    }
}

/// Items/s of every workload and backend, with the ratio to PyTorch.
fn print_summary(results: &[(&str, Vec<Measured>)], torch: &str) {
    let mut columns: Vec<&str> = Vec::new();
    for m in results.iter().flat_map(|(_, f)| f) {
        if !columns.contains(&m.label.as_str()) {
            columns.push(&m.label);
        }
    }
    println!("\nsummary: items/s (×PyTorch); last column sieve int8 / ORT int8");
    let header: Vec<String> = columns.iter().map(|c| format!("{c:>16}")).collect();
    println!("{:<8}{} {:>10}", "workload", header.join(""), "int8 ratio");
    for (name, figures) in results {
        let reference = rate_of(figures, torch);
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match (rate_of(figures, c), reference) {
                (Some(rate), Some(r)) if *c != torch => {
                    let cell = format!("{rate:.1} ({:.2}×)", rate / r);
                    format!("{cell:>16}")
                }
                (Some(rate), _) => format!("{rate:>16.1}"),
                (None, _) => format!("{:>16}", "-"),
            })
            .collect();
        let int8 = match (rate_of(figures, "sieve int8"), rate_of(figures, "ORT int8")) {
            (Some(ours), Some(theirs)) => format!("{:.2}×", ours / theirs),
            _ => "-".into(),
        };
        println!("{name:<8}{} {int8:>10}", cells.join(""));
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not used here.
    let threads = env_usize("SIEVE_BENCH_THREADS")
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: no other thread has started yet.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
    let only = std::env::var("SIEVE_BENCH_ONLY").unwrap_or_else(|_| WORKLOADS.join(","));
    let only: Vec<&str> = only
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| if w == "encode" { "short" } else { w })
        .inspect(|w| {
            assert!(
                WORKLOADS.contains(w),
                "SIEVE_BENCH_ONLY: no workload {w:?} (one of {WORKLOADS:?})"
            )
        })
        .collect();
    let workloads = workloads(&only);

    let inputs = std::env::temp_dir().join(format!("sieve-compare-st-{}.json", std::process::id()));
    let selected: serde_json::Map<String, Value> = workloads.iter().map(|w| (w.name.to_string(), w.json())).collect();
    let json = json!({"workloads": selected, "batch_size": BATCH_SIZE, "threads": threads});
    std::fs::write(&inputs, json.to_string()).expect("write inputs");
    let mut st = StWorker::start(&inputs)
        .map_err(|e| println!("PyTorch / ONNX Runtime side skipped: {e}"))
        .ok();
    let _ = std::fs::remove_file(&inputs);
    let torch = st
        .as_ref()
        .map_or_else(|| "PyTorch f32".to_string(), |s| s.torch_label.clone());

    let options = sieve_options();
    let dtypes: Vec<String> = options.iter().map(|o| o.dtype.to_string()).collect();
    let settings: Vec<String> = ["RAYON_NUM_THREADS", "SIEVE_KERNEL"]
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|v| format!("{name}={v}")))
        .collect();
    println!(
        "sieve on {} in {} ({})",
        options[0].device,
        dtypes.join(", "),
        settings.join(", ")
    );
    let mut refusals: Vec<String> = Vec::new();
    let mut results = Vec::new();
    for w in &workloads {
        let mut backends: Vec<(String, Backend)> = Vec::new();
        if let Some(st) = &st {
            for id in st.backends.get(w.name).into_iter().flatten() {
                backends.push((st.label(id), Backend::Python(id.clone())));
            }
        }
        let mut max_tokens = None;
        for load in &options {
            match load_sieve(w.kind, w.model, load) {
                Ok((run, tokens)) => {
                    max_tokens.get_or_insert(tokens);
                    backends.push((format!("sieve {}", load.dtype), Backend::Sieve(run)));
                }
                Err(e) if load.dtype == Dtype::F32 => panic!("{}: {e} (run scripts/fetch-models)", w.model),
                Err(e) => {
                    let reason = format!("sieve {} skipped: {e}", load.dtype);
                    if !refusals.contains(&reason) {
                        println!("{reason}");
                        refusals.push(reason);
                    }
                }
            }
        }
        let figures = measure(w, &backends, &mut st);
        print_workload(w, max_tokens, &figures, &torch);
        results.push((w.name, figures));
    }
    print_summary(&results, &torch);
}
