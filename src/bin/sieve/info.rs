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
    // Collections store a local folder as an absolute path and anything else as a hub id.
    let model = |m: &Option<String>| match m {
        None => "none".to_string(),
        Some(name) if std::path::Path::new(name).is_absolute() => format!("{name} [folder]"),
        Some(name) => format!("{name} [hub]"),
    };
    let count = |n: Option<usize>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
    outln!("collection    {}", args.db.display())?;
    outln!("documents     {}", info.documents)?;
    outln!(
        "dense model   {} (HNSW: {} documents)",
        model(&c.dense),
        count(info.dense)
    )?;
    outln!(
        "sparse model  {} (inverted index: {} documents)",
        model(&c.sparse),
        count(info.sparse)
    )?;
    outln!(
        "bm25          {} ({} documents)",
        if c.text { "on" } else { "off" },
        count(info.text)
    )?;
    outln!("reranker      {}", model(&c.reranker))?;
    outln!(
        "precision     {} (documents encoded in it; queries use it too)",
        info.dtype
    )?;
    if !info.stale.is_empty() {
        let names: Vec<&str> = info.stale.iter().map(|r| r.name()).collect();
        outln!(
            "stale         {} (missed writes after a failure; rebuilt from the store on the next open)",
            names.join(", ")
        )?;
    }
    outln!("sequence      {}", info.sequence)?;
    outln!("size on disk  {}", human_bytes(info.size_on_disk))?;
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
