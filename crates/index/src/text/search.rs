//! Free text to a BM25 query, and the filtered top-k walk over the segments.
//!
//! User queries never go through tantivy's query-parser syntax, where `AND`, quotes, colons or
//! an unbalanced parenthesis would change the meaning or fail: they are run through the index's
//! own analyzer and become one `SHOULD` term per distinct term, boosted by how often it occurs
//! (the bag-of-words query of Lucene and Pyserini), so every string is a valid query.

use std::collections::BTreeMap;

use tantivy::query::{BooleanQuery, BoostQuery, EnableScoring, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Score, Searcher, Term};

use super::{ID_FIELD, text_error};
use crate::error::Result;
use crate::filter::{AllowSet, allowed};
use crate::hit::{DocId, Hit, TopK};

/// The BM25 query for `text`, or `None` when it holds no term (empty, punctuation, stop words).
pub(super) fn bm25_query(analyzer: &TextAnalyzer, field: Field, text: &str) -> Option<Box<dyn Query>> {
    let mut analyzer = analyzer.clone();
    let mut stream = analyzer.token_stream(text);
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    while let Some(token) = stream.next() {
        *counts.entry(token.text.clone()).or_default() += 1;
    }
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = counts
        .into_iter()
        .map(|(text, count)| {
            let term = TermQuery::new(Term::from_field_text(field, &text), IndexRecordOption::WithFreqs);
            let query: Box<dyn Query> = if count == 1 {
                Box::new(term)
            } else {
                Box::new(BoostQuery::new(Box::new(term), count as Score))
            };
            (Occur::Should, query)
        })
        .collect();
    match clauses.len() {
        0 => None,
        1 => clauses.pop().map(|(_, query)| query),
        _ => Some(Box::new(BooleanQuery::new(clauses))),
    }
}

/// The best `k` live, allowed documents for `query`, score descending then id ascending.
///
/// The filter is checked as documents are scored, so it costs no recall; the top-k threshold
/// is passed to tantivy's block-max WAND, and carried from one segment to the next.
pub(super) fn top_k(searcher: &Searcher, query: &dyn Query, k: usize, filter: Option<&AllowSet>) -> Result<Vec<Hit>> {
    let weight = query
        .weight(EnableScoring::enabled_from_searcher(searcher))
        .map_err(text_error)?;
    let mut top = TopK::new(k);
    for segment in searcher.segment_readers() {
        let ids = segment
            .fast_fields()
            .u64(ID_FIELD)
            .map_err(text_error)?
            .first_or_default_col(u64::MAX);
        let alive = segment.alive_bitset();
        let start = pruning_threshold(&top);
        let mut callback = |doc, score| {
            if alive.is_none_or(|alive| alive.is_alive(doc))
                && let Ok(id) = DocId::try_from(ids.get_val(doc))
                && allowed(filter, id)
            {
                top.push(Hit { id, score });
            }
            pruning_threshold(&top)
        };
        weight
            .for_each_pruning(start, segment, &mut callback)
            .map_err(text_error)?;
    }
    Ok(top.into_sorted_vec())
}

/// tantivy only reports documents scoring strictly above the threshold; one step below the
/// k-th score lets a tie with a smaller id still in, so ties break by id whatever the segment
/// order.
fn pruning_threshold(top: &TopK) -> Score {
    top.threshold().map_or(Score::MIN, f32::next_down)
}
