//! `sieve reindex`: copies a collection into a new one with other models
//! (`Collection::reencode`), re-encoding only what the new models change.

use std::path::PathBuf;

use crate::output::Output;
use crate::{Result, open_collection};

/// Re-encode a collection with other models (say, one fine-tuned with `sieve train`) into a new
/// collection directory. The source is only read. Vectors of models that stay the same are
/// copied, the others encoded anew. Interrupted, run the same command again: documents already
/// in OUT are skipped.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  sieve reindex --db scifact.sieve --out scifact-tuned.sieve --dense ./minilm-scifact"
)]
pub struct Args {
    /// The collection to read.
    #[arg(long, value_name = "DIR")]
    db: PathBuf,
    /// The collection to write (created, or resumed when it exists).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// New bi-encoder (hub id or folder), or `none` to drop the dense index.
    #[arg(long, value_name = "MODEL")]
    dense: Option<String>,
    /// New SPLADE model, or `none`.
    #[arg(long, value_name = "MODEL")]
    sparse: Option<String>,
    /// New reranker, or `none`.
    #[arg(long, value_name = "MODEL")]
    reranker: Option<String>,
}

/// `Some("none")` drops the model, `Some(name)` replaces it, `None` keeps it.
fn choose(new: Option<String>, old: &Option<String>) -> Option<String> {
    match new.as_deref() {
        Some("none") => None,
        Some(_) => new,
        None => old.clone(),
    }
}

pub fn run(args: Args, out: &Output) -> Result {
    let source = open_collection(&args.db, out)?;
    let old = source.config();
    let mut config = old.clone();
    config.dense = choose(args.dense, &old.dense);
    config.sparse = choose(args.sparse, &old.sparse);
    config.reranker = choose(args.reranker, &old.reranker);
    let bar = out.bar(source.len() as u64, "reencode");
    let report = source.reencode(&args.out, config, &mut |p| bar.set_position(p.done as u64))?;
    bar.finish_and_clear();
    outln!(
        "{} documents written, {} already there, {} removed: {}",
        report.written,
        report.skipped,
        report.removed,
        args.out.display()
    )?;
    Ok(())
}
