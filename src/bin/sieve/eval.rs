//! `sieve eval`: retrieval quality of a collection on BEIR-format queries and qrels
//! (nDCG@10, Recall@100, MRR@10 as `sieve::engine::eval` defines them).

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;
use sieve::engine::eval::{mrr_at, ndcg_at, read_jsonl, read_qrels, recall_at};

use crate::output::{Output, print_json};
use crate::search::SearchOptions;
use crate::{Error, Result, open_collection};

/// Evaluate retrieval on BEIR queries and qrels: nDCG@10, Recall@100, MRR@10.
///
/// Files: queries.jsonl ({"_id", "text"} per line) and a qrels TSV (a header line, then
/// `query-id<TAB>corpus-id<TAB>grade`).
///
/// Only queries that have judgments in the qrels are run. nDCG@10 uses gain = grade and
/// discount log2(rank + 1); Recall@100 and MRR@10 count grades > 0 as relevant. Scores are
/// averaged over the queries run.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  sieve eval --db scifact.sieve --queries scifact/queries.jsonl --qrels scifact/qrels/test.tsv --mode bm25 --json\n\nThe search options are those of `sieve search`; see `sieve search --help` for --filter."
)]
pub struct Args {
    /// The collection directory (its document ids are the corpus ids of the qrels).
    #[arg(long, value_name = "DIR")]
    db: PathBuf,
    /// BEIR queries, JSON Lines.
    #[arg(long, value_name = "FILE")]
    queries: PathBuf,
    /// BEIR relevance judgments, TSV with a header line.
    #[arg(long, value_name = "FILE")]
    qrels: PathBuf,
    /// Hits retrieved per query.
    #[arg(long, short = 'k', default_value_t = 100)]
    top_k: usize,
    #[command(flatten)]
    options: SearchOptions,
    /// Print the scores as JSON: {"ndcg@10", "recall@100", "mrr@10", "queries"}.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Scores {
    #[serde(rename = "ndcg@10")]
    ndcg: f64,
    #[serde(rename = "recall@100")]
    recall: f64,
    #[serde(rename = "mrr@10")]
    mrr: f64,
    queries: usize,
}

pub fn run(args: Args, out: &Output) -> Result {
    args.options.validate()?;
    let qrels = read_qrels(&args.qrels)?;
    let queries: HashMap<String, String> = read_jsonl(&args.queries)?.into_iter().collect();
    let mut judged: Vec<(&String, &HashMap<String, u32>)> = qrels.iter().collect();
    judged.sort_by(|a, b| a.0.cmp(b.0));
    let missing = judged.iter().filter(|(q, _)| !queries.contains_key(*q)).count();
    if missing > 0 {
        out.warn(&format!(
            "{missing} of {} judged queries are not in {}: skipped",
            judged.len(),
            args.queries.display()
        ));
    }
    judged.retain(|(q, _)| queries.contains_key(*q));
    if judged.is_empty() {
        return Err(Error::msg(format!(
            "no query of {} has judgments in {}: nothing to evaluate",
            args.queries.display(),
            args.qrels.display()
        )));
    }
    let collection = open_collection(&args.db, out)?;
    let bar = out.bar(judged.len() as u64, "queries");
    let (mut ndcg, mut recall, mut mrr) = (0.0, 0.0, 0.0);
    for (qid, grades) in &judged {
        let text = &queries[*qid];
        let hits = args
            .options
            .apply(collection.search(text.as_str()))?
            .top_k(args.top_k)
            .run()
            .map_err(|e| Error::msg(format!("query {qid:?}: {e}")))?;
        let ranked: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        ndcg += ndcg_at(10, &ranked, grades);
        recall += recall_at(100, &ranked, grades);
        mrr += mrr_at(10, &ranked, grades);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let n = judged.len() as f64;
    let scores = Scores {
        ndcg: ndcg / n,
        recall: recall / n,
        mrr: mrr / n,
        queries: judged.len(),
    };
    if args.json {
        return print_json(&scores);
    }
    outln!("{:<11} {:>7}", "metric", "value")?;
    outln!("{:<11} {:>7.4}", "nDCG@10", scores.ndcg)?;
    outln!("{:<11} {:>7.4}", "Recall@100", scores.recall)?;
    outln!("{:<11} {:>7.4}", "MRR@10", scores.mrr)?;
    outln!("{:<11} {:>7}", "queries", scores.queries)?;
    Ok(())
}
