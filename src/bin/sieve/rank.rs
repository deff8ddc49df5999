//! `sieve rank`: a cross-encoder scores a query against each line of a file
//! (`CrossEncoder::rank`), best first.

use std::path::PathBuf;

use serde::Serialize;
use sieve::{CrossEncoder, ModelFiles, RankOptions};

use crate::Result;
use crate::encode::read_lines;
use crate::load_options;
use crate::output::{Output, print_json, snippet};

/// Rank the lines of a file against a query with a cross-encoder, best first.
///
/// Prints rank, score, the document's line number and its text; `--json` prints a list of
/// `{"rank", "corpus_id" (0-based line index), "score", "text"}`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  sieve rank --model sieve/stsb-minilm-l6-ce --query \"A man is eating pasta.\" --input sentences.txt --top-k 3"
)]
pub struct Args {
    /// Cross-encoder: a Hugging Face id (from the local hub cache) or a model folder.
    #[arg(long, value_name = "ID")]
    model: String,
    /// The query every document is scored against.
    #[arg(long)]
    query: String,
    /// Documents, one per line (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Keep only the best N documents.
    #[arg(long, value_name = "N")]
    top_k: Option<usize>,
    /// Pairs per forward pass.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Ranked<'a> {
    rank: usize,
    corpus_id: usize,
    score: f32,
    text: &'a str,
}

pub fn run(args: Args, out: &Output) -> Result {
    let documents = read_lines(&args.input)?;
    let model = CrossEncoder::from_files(&ModelFiles::resolve_in(&args.model, "cross-encoder")?, &load_options()?)?;
    let texts: Vec<&str> = documents.iter().map(String::as_str).collect();
    let options = RankOptions {
        top_k: args.top_k,
        batch_size: args.batch_size as usize,
        show_progress_bar: out.bars(),
        ..RankOptions::default()
    };
    let hits = model.rank(&args.query, &texts, &options)?;
    let ranked: Vec<Ranked> = hits
        .iter()
        .enumerate()
        .map(|(i, h)| Ranked {
            rank: i + 1,
            corpus_id: h.corpus_id,
            score: h.score,
            text: texts[h.corpus_id],
        })
        .collect();
    if args.json {
        return print_json(&ranked);
    }
    outln!("{:>4}  {:>8}  {:>5}  text", "rank", "score", "line")?;
    for r in &ranked {
        outln!(
            "{:>4}  {:>8.4}  {:>5}  {}",
            r.rank,
            r.score,
            r.corpus_id + 1,
            snippet(r.text, 100)
        )?;
    }
    Ok(())
}
