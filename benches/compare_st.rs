//! sieve against sentence-transformers / PyTorch on the same inputs, in one invocation.
//!
//! Three workloads, each run alternately by sieve (in this process) and by sentence-transformers
//! (a Python child, `benches/st_worker.py`, models loaded once) for several rounds; the medians
//! and their ratio are printed. Inputs come from SciFact (`../shared/data/scifact`):
//!
//! - `encode`: all-MiniLM-L6-v2 on the first 20 words of documents 0..2000 (batch 32)
//! - `predict`: sieve/stsb-minilm-l6-ce on (query i, first 30 words of document i), i < 500
//! - `splade`: rasyosef/splade-tiny on whole SciFact documents (`SIEVE_BENCH_SPLADE_DOCS`,
//!   default all 5,183)
//!
//! ```sh
//! SIEVE_PYTHON=/path/to/venv/bin/python cargo bench --bench compare_st
//! ```
//! `SIEVE_PYTHON` (default `python3`) must have `sentence-transformers` installed: nothing is
//! installed here. Without it only sieve's figures are printed. `SIEVE_BENCH_ROUNDS` (default 5)
//! sets the rounds; `SIEVE_BENCH_ONLY=encode,predict` picks workloads.
//!
//! On a GPU, `SIEVE_DEVICE` / `SIEVE_DTYPE` pick sieve's device and float type (build with the
//! matching feature), and sentence-transformers runs on `cuda` when `SIEVE_DEVICE` is not `cpu`
//! and PyTorch sees a GPU:
//! ```sh
//! SIEVE_DEVICE=wgpu cargo bench --features wgpu --bench compare_st
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use common::scifact;
use sieve::{
    CrossEncoder, EncodeOptions, LoadOptions, PredictOptions, SentenceTransformer, SparseEncodeOptions, SparseEncoder,
};

const BATCH_SIZE: usize = 32;

fn first_words(text: &str, n: usize) -> String {
    text.split_whitespace().take(n).collect::<Vec<_>>().join(" ")
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
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

/// The Python side, or why it is not there.
struct StWorker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl StWorker {
    fn start(inputs: &std::path::Path) -> Result<Self, String> {
        let python = std::env::var("SIEVE_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/st_worker.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(inputs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {python}: {e}"))?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        if !line.starts_with("ready") {
            let _ = child.wait();
            return Err(format!(
                "{python} could not load sentence-transformers (set SIEVE_PYTHON to a Python that has it)"
            ));
        }
        eprintln!("sentence-transformers worker: {}", line.trim());
        Ok(Self { child, stdin, stdout })
    }

    fn run(&mut self, workload: &str) -> f64 {
        writeln!(self.stdin, "{workload}").expect("worker stdin");
        self.stdin.flush().expect("worker stdin");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("worker stdout");
        line.trim().parse().unwrap_or_else(|_| panic!("worker said {line:?}"))
    }
}

impl Drop for StWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not used here.
    let rounds = env_usize("SIEVE_BENCH_ROUNDS", 5).max(1);
    let only = std::env::var("SIEVE_BENCH_ONLY").unwrap_or_else(|_| "encode,predict,splade".into());
    let scifact = scifact::data();
    let texts: Vec<String> = scifact
        .corpus
        .iter()
        .take(2000)
        .map(|d| first_words(&d.text, 20))
        .collect();
    let pairs: Vec<(String, String)> = scifact
        .queries
        .iter()
        .zip(&scifact.corpus)
        .take(500)
        .map(|(q, d)| (q.text.clone(), first_words(&d.text, 30)))
        .collect();
    let docs: Vec<String> = scifact
        .corpus
        .iter()
        .take(env_usize("SIEVE_BENCH_SPLADE_DOCS", scifact.corpus.len()))
        .map(|d| d.text.clone())
        .collect();

    let inputs = std::env::temp_dir().join(format!("sieve-compare-st-{}.json", std::process::id()));
    let json = serde_json::json!({"texts": texts, "pairs": pairs, "docs": docs, "batch_size": BATCH_SIZE});
    std::fs::write(&inputs, json.to_string()).expect("write inputs");
    let mut st = StWorker::start(&inputs)
        .map_err(|e| eprintln!("sentence-transformers side skipped: {e}"))
        .ok();

    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let load = LoadOptions::from_env().unwrap_or_else(|e| panic!("{e}"));
    println!("sieve on {} in {}", load.device, load.dtype);
    let bi = SentenceTransformer::from_pretrained_with("sentence-transformers/all-MiniLM-L6-v2", &load)
        .unwrap_or_else(|e| panic!("{e} (run scripts/fetch-models)"));
    let ce = CrossEncoder::from_pretrained_with("sieve/stsb-minilm-l6-ce", &load)
        .unwrap_or_else(|e| panic!("{e} (run scripts/fetch-models)"));
    let splade = SparseEncoder::from_pretrained_with("rasyosef/splade-tiny", &load)
        .unwrap_or_else(|e| panic!("{e} (run scripts/fetch-models)"));

    let encode_options = EncodeOptions {
        batch_size: BATCH_SIZE,
        ..Default::default()
    };
    let predict_options = PredictOptions {
        batch_size: BATCH_SIZE,
        ..Default::default()
    };
    let splade_options = SparseEncodeOptions {
        batch_size: BATCH_SIZE,
        ..Default::default()
    };
    type Run<'a> = Box<dyn Fn() + 'a>;
    let workloads: Vec<(&str, &str, usize, Run)> = vec![
        (
            "encode",
            "texts",
            texts.len(),
            Box::new(|| drop(bi.encode_with(&texts, &encode_options).expect("encode"))),
        ),
        (
            "predict",
            "pairs",
            pairs.len(),
            Box::new(|| drop(ce.predict_with(&pairs, &predict_options).expect("predict"))),
        ),
        (
            "splade",
            "docs",
            docs.len(),
            Box::new(|| drop(splade.encode_with(&docs, &splade_options).expect("splade"))),
        ),
    ];

    println!(
        "{:<8} {:>6} {:>12} {:>12} {:>8}   (items/s, median of {rounds} rounds, batch {BATCH_SIZE})",
        "workload", "items", "sieve", "s-t", "ratio"
    );
    for (name, unit, n, run) in &workloads {
        if !only.split(',').any(|w| w.trim() == *name) {
            continue;
        }
        // One untimed warm-up each, then alternate who goes first.
        run();
        if let Some(st) = st.as_mut() {
            st.run(name);
        }
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let time_ours = || {
                let start = Instant::now();
                run();
                start.elapsed().as_secs_f64()
            };
            match st.as_mut() {
                Some(st) if round % 2 == 1 => {
                    theirs.push(st.run(name));
                    ours.push(time_ours());
                }
                Some(st) => {
                    ours.push(time_ours());
                    theirs.push(st.run(name));
                }
                None => ours.push(time_ours()),
            }
        }
        let ours = *n as f64 / median(ours);
        match theirs.is_empty() {
            true => println!("{name:<8} {n:>6} {ours:>10.1}/s {:>12} {:>8}   {unit}", "-", "-"),
            false => {
                let theirs = *n as f64 / median(theirs);
                println!(
                    "{name:<8} {n:>6} {ours:>10.1}/s {theirs:>10.1}/s {:>7.2}×   {unit}",
                    ours / theirs
                );
            }
        }
    }
    drop(st);
    let _ = std::fs::remove_file(&inputs);
}
