//! Training speed and memory: sieve's trainer against sentence-transformers' trainer on the same
//! examples, batch size, maximum length and schedule, in one invocation.
//!
//! The examples are SciFact training pairs (query, title + " " + abstract) with the queries of
//! `qrels/dev.tsv` left out, the first `SIEVE_BENCH_EXAMPLES` of them (default 64);
//! all-MiniLM-L6-v2, MultipleNegativesRankingLoss, batch `SIEVE_BENCH_BATCH` (32), maximum length
//! `SIEVE_BENCH_MAX_LEN` (256), lr 2e-5, warmup ratio 0.1, weight decay 0.01, dropout off on both
//! sides. Each round runs sieve in this process and then `benches/train_st.py` in a Python child
//! (`SIEVE_PYTHON`, default `python3`, with torch, sentence-transformers, datasets and
//! accelerate); `SIEVE_BENCH_ROUNDS` rounds (default 1) alternate which goes first. Printed:
//! examples/s of each, their ratio, each side's peak RSS, and sieve's resident memory after every
//! epoch (`SIEVE_BENCH_EPOCHS`, default 1; more than one shows whether memory grows).
//!
//! As `sieve train` does, the bench first has malloc keep freed memory
//! (`sieve::encoders::allocator::retain_freed_memory`); `SIEVE_BENCH_DEFAULT_MALLOC=1` leaves
//! glibc's defaults, to measure what that buys.
//!
//! ```sh
//! SIEVE_PYTHON=/path/to/venv/bin/python cargo bench --bench train_speed
//! ```

use std::io::Write;
use std::path::Path;
use std::process::Command;

use sieve::encoders::training::{ModelKind, TrainableModel};
use sieve::train::data::beir_pairs;
use sieve::train::losses::DenseLoss;
use sieve::train::trainer::{Example, Objective, Trainer, TrainingArgs};

const MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A field of /proc/self/status in MiB (VmRSS, VmHWM).
fn memory(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn sieve_run(examples: &[Example], batch: usize, max_len: usize, epochs: usize) -> f64 {
    let mut model = TrainableModel::from_pretrained(ModelKind::SentenceTransformer, MODEL).expect("the model loads");
    model.set_max_seq_length(max_len).expect("a valid length");
    let args = TrainingArgs {
        epochs,
        batch_size: batch,
        lr: 2e-5,
        // Off, as `train_st.py` turns it off on the Python side.
        dropout: false,
        show_progress_bar: true,
        ..TrainingArgs::default()
    };
    let report = Trainer::new(Objective::Dense(DenseLoss::default()), args)
        .fit(&mut model, examples, |_, _, epoch| {
            println!("  sieve: resident {:.0} MiB after epoch {epoch}", memory("VmRSS"));
            Ok(())
        })
        .expect("training runs");
    println!(
        "  sieve: {:.2} examples/s, {:.1} s, losses {:?}, peak RSS {:.0} MiB",
        report.examples_per_second,
        report.seconds,
        report.epoch_losses,
        memory("VmHWM")
    );
    report.examples_per_second
}

fn python_run(file: &Path, batch: usize, max_len: usize) -> Option<f64> {
    let python = std::env::var("SIEVE_PYTHON").unwrap_or_else(|_| "python3".into());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/train_st.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(file)
        .arg(MODEL)
        .arg(batch.to_string())
        .arg(max_len.to_string())
        .arg("2e-5")
        .arg(threads.to_string())
        .env("HF_HUB_OFFLINE", "1")
        .output();
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            let stderr = String::from_utf8_lossy(&o.stderr);
            let last = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
            println!(
                "  sentence-transformers: failed ({last}); `{python} -m pip install torch sentence-transformers datasets accelerate` and set SIEVE_PYTHON"
            );
            return None;
        }
        Err(e) => {
            println!("  sentence-transformers: cannot run {python}: {e} (set SIEVE_PYTHON)");
            return None;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'))?;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let rate = v["examples_per_second"].as_f64()?;
    println!(
        "  sentence-transformers: {rate:.2} examples/s, {:.1} s, loss {:.4}, peak RSS {:.0} MiB",
        v["seconds"].as_f64().unwrap_or(f64::NAN),
        v["loss"].as_f64().unwrap_or(f64::NAN),
        v["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
    );
    Some(rate)
}

fn main() {
    let retained = std::env::var("SIEVE_BENCH_DEFAULT_MALLOC").map_or(true, |v| v != "1")
        && sieve::encoders::allocator::retain_freed_memory();
    let scifact = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/scifact");
    let (examples, batch, max_len) = (
        env("SIEVE_BENCH_EXAMPLES", 64),
        env("SIEVE_BENCH_BATCH", 32),
        env("SIEVE_BENCH_MAX_LEN", 256),
    );
    let (rounds, epochs) = (env("SIEVE_BENCH_ROUNDS", 1), env("SIEVE_BENCH_EPOCHS", 1));
    let pairs = beir_pairs(
        &scifact,
        &scifact.join("qrels/train.tsv"),
        Some(&scifact.join("qrels/dev.tsv")),
    )
    .expect("SciFact is in ../shared/data/scifact")
    .pairs();
    let pairs = &pairs[..examples.min(pairs.len())];
    let examples: Vec<Example> = pairs.iter().map(|p| Example::pair(&p.anchor, &p.positive)).collect();
    let file = std::env::temp_dir().join(format!("sieve-train-speed-{}.jsonl", std::process::id()));
    let mut out = std::fs::File::create(&file).expect("a temporary file");
    for p in pairs {
        let line = serde_json::json!({"anchor": p.anchor, "positive": p.positive});
        writeln!(out, "{line}").expect("writable");
    }
    println!(
        "train_speed: {} examples, batch {batch}, max length {max_len}, MultipleNegativesRankingLoss, {MODEL}; \
         malloc keeps freed memory: {retained}",
        examples.len()
    );
    let mut ratios = Vec::new();
    for round in 0..rounds {
        println!("round {}", round + 1);
        let (ours, theirs) = if round % 2 == 0 {
            let ours = sieve_run(&examples, batch, max_len, epochs);
            (ours, python_run(&file, batch, max_len))
        } else {
            let theirs = python_run(&file, batch, max_len);
            (sieve_run(&examples, batch, max_len, epochs), theirs)
        };
        if let Some(theirs) = theirs {
            ratios.push(ours / theirs);
            println!("  sieve ÷ sentence-transformers: {:.2}×", ours / theirs);
        }
    }
    let _ = std::fs::remove_file(&file);
    if !ratios.is_empty() {
        ratios.sort_by(f64::total_cmp);
        println!(
            "median ratio over {} rounds: {:.2}×",
            ratios.len(),
            ratios[ratios.len() / 2]
        );
    }
}
