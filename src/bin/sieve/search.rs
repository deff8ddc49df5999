//! `sieve search`: one query against a collection, and the search options it shares with
//! `sieve eval` (retrievers, fusion, rerank stage, filter).

use std::path::PathBuf;

use clap::ValueEnum;
use sieve::engine::{Fusion, Rerank, Search, SearchHit};

use crate::output::{Output, print_json, snippet};
use crate::{Error, Result, open_collection};

/// Search a collection: rank, score, path:chunk (or id) and a snippet per hit.
///
/// A hit whose text is a near-duplicate of a higher hit's is folded into it (shown as
/// `also in:` under it) and the next candidate takes its place; --keep-duplicates lists it.
///
/// By default a hybrid search (dense + sparse + BM25, fused by min-max) whose top 20
/// are reranked by the collection's cross-encoder and fused with the first stage (weight 0.75).
/// `--json` prints the hits with their text, metadata and every retriever's rank and score.
#[derive(Debug, clap::Args)]
#[command(after_help = FILTER_HELP)]
pub struct Args {
    /// The collection directory.
    #[arg(long, value_name = "DIR")]
    db: PathBuf,
    /// The query.
    query: String,
    /// Number of hits.
    #[arg(long, short = 'k', default_value_t = 10)]
    top_k: usize,
    #[command(flatten)]
    options: SearchOptions,
    /// Print the hits as JSON.
    #[arg(long)]
    json: bool,
}

/// The grammar of `--filter`, shown in `--help`.
pub const FILTER_HELP: &str = "\
Filter expressions (--filter), on the documents' metadata:
  path=notes/a.md            equality (also ==); != for inequality
  chunk>=2                   numeric comparison: < <= > >=
  kind in (a, b)             one of several values
  exists title               the field is present and not null
  not (a=1 or b=2) and c=3   combined with and / or / not and parentheses (and binds tighter)
Values: numbers, true, false, null, bare words, or 'quoted' / \"quoted\" strings; a bare number
also matches the same digits stored as a string. Fields: metadata keys, dotted for nested
objects (source.kind). Metadata written by `sieve index`: path, chunk, title, byte_start,
byte_end, hash.

Example:
  sieve search --db notes.sieve \"how do I rotate the logs\" --filter 'path=ops/logging.md or chunk<2' --rerank 50";

/// How a query is answered: shared by `search` and `eval`.
#[derive(Debug, clap::Args)]
pub struct SearchOptions {
    /// First-stage retrieval: one retriever, or all the collection has, fused.
    #[arg(long, value_enum, default_value_t = Mode::Hybrid)]
    mode: Mode,
    /// Rerank the top N first-stage hits with the collection's cross-encoder (0: no rerank
    /// stage). Default: 20 when the collection has a reranker.
    #[arg(long, value_name = "N")]
    rerank: Option<usize>,
    /// How reranker scores combine with the first stage: the reranker's order alone
    /// (`replace`) or reciprocal-rank fusion of both (`fuse`, the default).
    #[arg(long, value_enum, value_name = "MODE")]
    rerank_mode: Option<RerankMode>,
    /// Weight of the reranker's ranking under `--rerank-mode fuse` (default 0.75).
    #[arg(long, value_name = "W")]
    rerank_weight: Option<f32>,
    /// How a hybrid search fuses its retrievers.
    #[arg(long, value_enum, default_value_t = FusionArg::Minmax)]
    fusion: FusionArg,
    /// Only documents whose metadata matches EXPR (see the grammar below).
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,
    /// List hits whose text repeats a higher hit's (e.g. a chapter and an all-chapters page)
    /// on their own, instead of folding them into that hit.
    #[arg(long)]
    keep_duplicates: bool,
    /// Diversify the hits (maximal marginal relevance, 0 to 1): higher values push hits that
    /// say what a hit above says further down. Needs a dense model.
    #[arg(long, value_name = "D")]
    diversity: Option<f32>,
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The bi-encoder (HNSW).
    Dense,
    /// The SPLADE model (inverted index).
    Sparse,
    /// BM25 full text.
    Bm25,
    /// Every retriever the collection has, fused.
    Hybrid,
}

/// `--rerank-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RerankMode {
    /// The cross-encoder's order alone.
    Replace,
    /// Reciprocal-rank fusion of the cross-encoder's and the first stage's rankings.
    Fuse,
}

/// `--fusion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FusionArg {
    /// Reciprocal rank fusion, k = 60.
    Rrf,
    /// Scores rescaled to [0, 1] per retriever by min and max, summed.
    Minmax,
    /// Distribution-based score fusion (mean ± 3 standard deviations), summed.
    Dbsf,
}

impl FusionArg {
    /// The engine's fusion this names.
    pub fn fusion(self) -> Fusion {
        match self {
            FusionArg::Rrf => Fusion::Rrf { k: 60.0 },
            FusionArg::Minmax => Fusion::MinMax,
            FusionArg::Dbsf => Fusion::Dbsf,
        }
    }
}

impl SearchOptions {
    /// Checks the options (filter syntax, rerank weight) before any model is loaded.
    pub fn validate(&self) -> Result {
        self.rerank_mode()?;
        self.parsed_filter()?;
        Ok(())
    }

    fn rerank_mode(&self) -> Result<Option<Rerank>> {
        if let Some(w) = self.rerank_weight
            && !(w.is_finite() && w >= 0.0)
        {
            return Err(Error::msg(format!(
                "--rerank-weight must be a finite number >= 0, got {w}"
            )));
        }
        match (self.rerank_mode, self.rerank_weight) {
            (Some(RerankMode::Replace), Some(_)) => {
                Err(Error::msg("--rerank-weight applies to --rerank-mode fuse, not replace"))
            }
            (Some(RerankMode::Replace), None) => Ok(Some(Rerank::Replace)),
            (Some(RerankMode::Fuse), w) | (None, w @ Some(_)) => Ok(Some(Rerank::Fuse {
                weight: w.unwrap_or(0.75),
            })),
            (None, None) => Ok(None),
        }
    }

    fn parsed_filter(&self) -> Result<Option<sieve::engine::Filter>> {
        self.filter
            .as_deref()
            .map(|expr| {
                expr.parse()
                    .map_err(|e| Error::msg(format!("invalid --filter {:?} {e}", shortened(expr))))
            })
            .transpose()
    }

    /// The search with these options applied.
    pub fn apply<'c>(&self, search: Search<'c>) -> Result<Search<'c>> {
        let mut search = match self.mode {
            Mode::Dense => search.dense(),
            Mode::Sparse => search.sparse(),
            Mode::Bm25 => search.bm25(),
            Mode::Hybrid => search.hybrid(),
        };
        search = search.fusion(self.fusion.fusion());
        if let Some(n) = self.rerank {
            search = search.rerank(n);
        }
        if let Some(mode) = self.rerank_mode()? {
            search = search.rerank_mode(mode);
        }
        if let Some(filter) = self.parsed_filter()? {
            search = search.filter(filter);
        }
        if self.keep_duplicates {
            search = search.keep_duplicates();
        }
        if let Some(diversity) = self.diversity {
            search = search.diversity(diversity);
        }
        Ok(search)
    }
}

pub fn run(args: Args, out: &Output) -> Result {
    args.options.validate()?;
    if args.query.trim().is_empty() {
        return Err(Error::msg("the query is empty"));
    }
    let collection = open_collection(&args.db, out)?;
    let hits = args
        .options
        .apply(collection.search(args.query.as_str()))?
        .top_k(args.top_k)
        .run()?;
    if args.json {
        return print_json(&hits);
    }
    if hits.is_empty() {
        out.note("no hits");
        return Ok(());
    }
    let locations: Vec<String> = hits.iter().map(location).collect();
    let width = locations.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    for (i, (hit, loc)) in hits.iter().zip(&locations).enumerate() {
        outln!(
            "{:>3}  {:>8.4}  {loc:<width$}  {}",
            i + 1,
            hit.score,
            snippet(&hit.text, 100)
        )?;
        if !hit.duplicates.is_empty() {
            outln!("{:>15}also in: {}", "", hit.duplicates.join(", "))?;
        }
    }
    Ok(())
}

/// `path:chunk` for documents written by `sieve index`, else the id.
fn location(hit: &SearchHit) -> String {
    match (hit.metadata["path"].as_str(), hit.metadata["chunk"].as_u64()) {
        (Some(path), Some(chunk)) => format!("{path}:{chunk}"),
        _ => hit.id.clone(),
    }
}

/// `expr` as an error message quotes it: at most 80 characters, with `…` when cut.
fn shortened(expr: &str) -> String {
    const MAX: usize = 80;
    match expr.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &expr[..end]),
        None => expr.to_string(),
    }
}
