//! `sieve info`: a collection's models, document counts per index, sequence and size.

use std::path::PathBuf;

use crate::output::{Output, print_json};
use crate::{Result, open_collection};

/// Show a collection's models, document counts, sequence number and size on disk.
///
/// The store and each index report how many documents they hold (equal when healthy).
///
/// `--json` prints `sieve::engine::Info`: {"config", "documents", "dense", "sparse", "text",
/// "dtype", "sequence", "size_on_disk"}.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  sieve info --db notes.sieve --json")]
pub struct Args {
    /// The collection directory.
    #[arg(long, value_name = "DIR")]
    db: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, out: &Output) -> Result {
    let collection = open_collection(&args.db, out)?;
    let info = collection.info()?;
    if args.json {
        return print_json(&info);
    }
    let c = &info.config;
    let model = |m: &Option<String>| m.clone().unwrap_or_else(|| "none".into());
    let count = |n: Option<usize>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
    println!("collection    {}", args.db.display());
    println!("documents     {}", info.documents);
    println!(
        "dense model   {} (HNSW: {} documents)",
        model(&c.dense),
        count(info.dense)
    );
    println!(
        "sparse model  {} (inverted index: {} documents)",
        model(&c.sparse),
        count(info.sparse)
    );
    println!(
        "bm25          {} ({} documents)",
        if c.text { "on" } else { "off" },
        count(info.text)
    );
    println!("reranker      {}", model(&c.reranker));
    println!(
        "precision     {} (documents encoded in it; queries use it too)",
        info.dtype
    );
    println!("sequence      {}", info.sequence);
    println!("size on disk  {}", human_bytes(info.size_on_disk));
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {} ({n} bytes)", UNITS[unit])
    }
}
