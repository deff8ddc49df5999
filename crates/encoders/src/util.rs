//! sentence-transformers' `util` search helpers on [`Embeddings`]: [`semantic_search`],
//! [`paraphrase_mining`] / [`paraphrase_mining_embeddings`] and [`community_detection`], with
//! the same defaults and the same algorithms as sentence-transformers 6.2 (chunked scoring,
//! `top_k + 1` candidates per row and a bounded heap when mining, the growing sort window of
//! the CPU path when detecting communities), so they return what Python returns for the same
//! embeddings. Scores come from the same packed matrix product as the models' layers.
//!
//! One deliberate difference: where scores are exactly equal, Python's order depends on
//! `torch.topk` (unspecified) and on heap layout; here the lower index always comes first, so
//! results are deterministic and do not depend on the chunk sizes.
//!
//! ```
//! use sieve_encoders::Embeddings;
//! use sieve_encoders::util::{SemanticSearchOptions, semantic_search};
//!
//! let corpus = Embeddings::from_rows(&[vec![1.0, 0.0], vec![0.6, 0.8], vec![0.0, 1.0]]).unwrap();
//! let queries = Embeddings::from_rows(&[vec![0.0, 2.0]]).unwrap();
//! let options = SemanticSearchOptions { top_k: 2, ..Default::default() };
//! let hits = semantic_search(&queries, &corpus, &options)?;
//! assert_eq!(hits[0].iter().map(|h| h.corpus_id).collect::<Vec<_>>(), [2, 1]);
//! assert!((hits[0][1].score - 0.8).abs() < 1e-6);
//! # Ok::<(), sieve_encoders::EncoderError>(())
//! ```

use std::borrow::Cow;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashSet};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::embeddings::Embeddings;
use crate::error::{EncoderError, Result};
use crate::kernels::sgemm::{F32Path, PackedF32, sgemm};
use crate::sentence_transformer::{EncodeOptions, SentenceTransformer};
use crate::similarity::SimilarityFn;

/// Options of [`semantic_search`], defaulting to Python's keyword defaults.
///
/// ```
/// use sieve_encoders::SimilarityFn;
/// use sieve_encoders::util::SemanticSearchOptions;
///
/// let options = SemanticSearchOptions { top_k: 5, score_function: SimilarityFn::Dot, ..Default::default() };
/// assert_eq!((options.query_chunk_size, options.corpus_chunk_size), (100, 500_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemanticSearchOptions {
    /// Hits kept per query (default 10); 0 gives empty lists, as in Python.
    pub top_k: usize,
    /// Corpus rows scored at a time (default 500,000); bounds memory with `query_chunk_size`.
    pub corpus_chunk_size: usize,
    /// Queries scored at a time (default 100).
    pub query_chunk_size: usize,
    /// How queries and corpus rows are compared (default cosine, Python's `cos_sim`).
    pub score_function: SimilarityFn,
}

impl Default for SemanticSearchOptions {
    fn default() -> Self {
        Self {
            top_k: 10,
            corpus_chunk_size: 500_000,
            query_chunk_size: 100,
            score_function: SimilarityFn::Cosine,
        }
    }
}

/// One result of [`semantic_search`]: a corpus row and its score (Python's
/// `{"corpus_id": ..., "score": ...}`).
///
/// ```
/// use sieve_encoders::util::SearchHit;
/// let hit = SearchHit { corpus_id: 3, score: 0.5 };
/// assert_eq!(hit.corpus_id, 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchHit {
    /// Row of the corpus embeddings.
    pub corpus_id: usize,
    /// Its score under the search's score function.
    pub score: f32,
}

/// The `top_k` corpus rows most similar to each query, best first (`util.semantic_search`).
///
/// The corpus is scored `corpus_chunk_size` rows and `query_chunk_size` queries at a time and
/// each chunk's best `top_k` are merged, so memory stays bounded on large corpora. Equal scores
/// rank the lower `corpus_id` first. An empty side gives empty results; embeddings of different
/// widths are a [`EncoderError::DimensionMismatch`] and a chunk size of 0 an
/// [`EncoderError::InvalidArgument`].
///
/// ```
/// use sieve_encoders::Embeddings;
/// use sieve_encoders::util::{SemanticSearchOptions, semantic_search};
///
/// let corpus = Embeddings::from_rows(&[vec![1.0, 0.0], vec![0.6, 0.8], vec![0.0, 1.0]]).unwrap();
/// let queries = Embeddings::from_rows(&[vec![1.0, 0.1], vec![0.0, 3.0]]).unwrap();
/// let hits = semantic_search(&queries, &corpus, &SemanticSearchOptions::default())?;
/// assert_eq!(hits.len(), 2);
/// assert_eq!(hits[0][0].corpus_id, 0);
/// assert_eq!(hits[1].iter().map(|h| h.corpus_id).collect::<Vec<_>>(), [2, 1, 0]);
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
pub fn semantic_search(
    queries: &Embeddings,
    corpus: &Embeddings,
    options: &SemanticSearchOptions,
) -> Result<Vec<Vec<SearchHit>>> {
    let query_chunk = chunk_size("query_chunk_size", options.query_chunk_size)?;
    let corpus_chunk = chunk_size("corpus_chunk_size", options.corpus_chunk_size)?;
    check_dims(corpus, queries)?;
    let top_k = options.top_k;
    if queries.is_empty() || corpus.is_empty() || top_k == 0 {
        return Ok(vec![Vec::new(); queries.len()]);
    }
    let mut best = vec![Vec::new(); queries.len()];
    let (dim, function) = (corpus.dim(), options.score_function);
    let queries = prepare(function, queries.as_slice(), dim);
    // Corpus chunks outside, as in Python 6.2, so each is normalised and packed once.
    for (c, corpus_rows) in corpus.as_slice().chunks(corpus_chunk * dim).enumerate() {
        let corpus_rows = prepare(function, corpus_rows, dim);
        let right = Right::new(function, &corpus_rows, dim);
        for (q, query_rows) in queries.chunks(query_chunk * dim).enumerate() {
            let scores = right.scores(query_rows);
            for (r, row) in scores.chunks_exact(right.len()).enumerate() {
                merge_top_k(&mut best[q * query_chunk + r], row, c * corpus_chunk, top_k);
            }
        }
    }
    Ok(best
        .into_iter()
        .map(|hits| {
            hits.into_iter()
                .map(|(score, corpus_id)| SearchHit { corpus_id, score })
                .collect()
        })
        .collect())
}

/// Options of [`paraphrase_mining_embeddings`] (and [`paraphrase_mining`]), defaulting to
/// Python's keyword defaults.
///
/// ```
/// use sieve_encoders::util::ParaphraseMiningOptions;
///
/// let options = ParaphraseMiningOptions { top_k: 5, ..Default::default() };
/// assert_eq!(options.max_pairs, 500_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParaphraseMiningOptions {
    /// Rows scored at a time as queries (default 5,000).
    pub query_chunk_size: usize,
    /// Rows scored at a time as candidates (default 100,000).
    pub corpus_chunk_size: usize,
    /// Most pairs returned (default 500,000).
    pub max_pairs: usize,
    /// Other rows considered per row (default 100).
    pub top_k: usize,
    /// How rows are compared (default cosine).
    pub score_function: SimilarityFn,
}

impl Default for ParaphraseMiningOptions {
    fn default() -> Self {
        Self {
            query_chunk_size: 5_000,
            corpus_chunk_size: 100_000,
            max_pairs: 500_000,
            top_k: 100,
            score_function: SimilarityFn::Cosine,
        }
    }
}

/// Encodes `sentences` with `model` and mines them for paraphrases
/// ([`paraphrase_mining_embeddings`]): `(score, i, j)` with `i < j`, best first
/// (`util.paraphrase_mining`). Python's `batch_size`, `show_progress_bar`, `prompt_name` and
/// `prompt` are the fields of `encode`.
///
/// ```no_run
/// use sieve_encoders::{EncodeOptions, SentenceTransformer};
/// use sieve_encoders::util::{ParaphraseMiningOptions, paraphrase_mining};
///
/// let model = SentenceTransformer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2")?;
/// let sentences = ["The cat sits outside", "A man is playing guitar", "The cat plays in the garden"];
/// let pairs = paraphrase_mining(&model, &sentences, &EncodeOptions::default(), &ParaphraseMiningOptions::default())?;
/// for (score, i, j) in pairs {
///     println!("{score:.4} {} | {}", sentences[i], sentences[j]);
/// }
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
pub fn paraphrase_mining(
    model: &SentenceTransformer,
    sentences: &[&str],
    encode: &EncodeOptions,
    options: &ParaphraseMiningOptions,
) -> Result<Vec<(f32, usize, usize)>> {
    let embeddings = model.encode_with(sentences, encode)?;
    paraphrase_mining_embeddings(&embeddings, options)
}

/// The most similar pairs of rows, as `(score, i, j)` with `i < j`, best first
/// (`util.paraphrase_mining_embeddings`).
///
/// Python's algorithm step for step: each row's `top_k` best other rows over the whole
/// corpus (merged chunk by chunk), visited row by row; a pair is scored by the orientation met
/// first (the score function is assumed symmetric) and enters a min-heap of at most
/// `max_pairs` pairs, which evicts its lowest. Equal scores are listed by `(i, j)`. A chunk size
/// of 0 is an [`EncoderError::InvalidArgument`].
///
/// ```
/// use sieve_encoders::Embeddings;
/// use sieve_encoders::util::{ParaphraseMiningOptions, paraphrase_mining_embeddings};
///
/// let e = Embeddings::from_rows(&[vec![1.0, 0.0], vec![0.0, 1.0], vec![0.8, 0.6]]).unwrap();
/// let pairs = paraphrase_mining_embeddings(&e, &ParaphraseMiningOptions::default())?;
/// assert_eq!(pairs.iter().map(|&(_, i, j)| (i, j)).collect::<Vec<_>>(), [(0, 2), (1, 2), (0, 1)]);
/// assert!((pairs[0].0 - 0.8).abs() < 1e-6);
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
pub fn paraphrase_mining_embeddings(
    embeddings: &Embeddings,
    options: &ParaphraseMiningOptions,
) -> Result<Vec<(f32, usize, usize)>> {
    let query_chunk = chunk_size("query_chunk_size", options.query_chunk_size)?;
    let corpus_chunk = chunk_size("corpus_chunk_size", options.corpus_chunk_size)?;
    if embeddings.is_empty() {
        return Ok(Vec::new());
    }
    let (dim, function, top_k) = (embeddings.dim(), options.score_function, options.top_k);
    let rows = prepare(function, embeddings.as_slice(), dim);
    let corpus: Vec<Right> = rows
        .chunks(corpus_chunk * dim)
        .map(|chunk| Right::new(function, chunk, dim))
        .collect();

    let mut heap = BinaryHeap::new();
    let mut queued = HashSet::new();
    let mut min_score = f32::NEG_INFINITY;
    for (q, query_rows) in rows.chunks(query_chunk * dim).enumerate() {
        // One more than `top_k` per row: the row itself is usually its own best match.
        let candidates = chunked_top_k(&corpus, corpus_chunk, query_rows, dim, top_k.saturating_add(1));
        for (r, candidates) in candidates.into_iter().enumerate() {
            let i = q * query_chunk + r;
            for (score, j) in candidates.into_iter().filter(|&(_, j)| j != i).take(top_k) {
                let pair = (i.min(j), i.max(j));
                if score <= min_score || !queued.insert(pair) {
                    continue;
                }
                let mined = Mined {
                    score,
                    i: pair.0,
                    j: pair.1,
                };
                if heap.len() < options.max_pairs {
                    heap.push(Reverse(mined));
                    continue;
                }
                // `heapq.heappushpop`: the lower of the newcomer and the heap's lowest leaves.
                let evicted = match heap.peek() {
                    Some(&Reverse(lowest)) if lowest < mined => {
                        heap.pop();
                        heap.push(Reverse(mined));
                        lowest
                    }
                    _ => mined,
                };
                queued.remove(&(evicted.i, evicted.j));
                min_score = evicted.score;
            }
        }
    }
    let mut pairs: Vec<Mined> = heap.into_iter().map(|Reverse(m)| m).collect();
    pairs.sort_by(|a, b| descending(a.score, b.score).then((a.i, a.j).cmp(&(b.i, b.j))));
    Ok(pairs.into_iter().map(|m| (m.score, m.i, m.j)).collect())
}

/// Each query row's `k` best `(score, corpus row)` over all of `corpus` (chunks of `chunk`
/// rows), best first.
fn chunked_top_k(corpus: &[Right], chunk: usize, queries: &[f32], dim: usize, k: usize) -> Vec<Vec<(f32, usize)>> {
    let mut best = vec![Vec::new(); queries.len() / dim];
    for (c, right) in corpus.iter().enumerate() {
        let scores = right.scores(queries);
        for (row, best) in scores.chunks_exact(right.len()).zip(&mut best) {
            merge_top_k(best, row, c * chunk, k);
        }
    }
    best
}

/// Merges the `k` best of `row` (a chunk of scores starting at corpus row `offset`) into
/// `best`, keeping the `k` best `(score, corpus row)` overall, best first, equal scores by row.
/// Any split into chunks therefore gives the same result.
fn merge_top_k(best: &mut Vec<(f32, usize)>, row: &[f32], offset: usize, k: usize) {
    best.extend(top_k_indices(row, k).into_iter().map(|j| (row[j], offset + j)));
    best.sort_by(|a, b| descending(a.0, b.0).then(a.1.cmp(&b.1)));
    best.truncate(k);
}

/// Options of [`community_detection`], defaulting to Python's keyword defaults.
///
/// ```
/// use sieve_encoders::util::CommunityDetectionOptions;
///
/// let options = CommunityDetectionOptions { threshold: 0.8, min_community_size: 3, ..Default::default() };
/// assert_eq!(options.batch_size, 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommunityDetectionOptions {
    /// Cosine similarity to the centre at or above which a row is a member (default 0.75).
    pub threshold: f32,
    /// Smallest community returned, its centre included (default 10; at least 1).
    pub min_community_size: usize,
    /// Rows scored against all others at a time (default 1,024).
    pub batch_size: usize,
    /// Draw a progress bar over the batches on stderr.
    pub show_progress_bar: bool,
}

impl Default for CommunityDetectionOptions {
    fn default() -> Self {
        Self {
            threshold: 0.75,
            min_community_size: 10,
            batch_size: 1024,
            show_progress_bar: false,
        }
    }
}

/// Groups of rows whose cosine similarity to a centre is at least `threshold`, largest first
/// (`util.community_detection`); each community lists its centre first, then its members by
/// decreasing similarity to it (equal similarities by index), and no row is in two communities.
///
/// sentence-transformers' CPU algorithm: every row with at least `min_community_size` rows
/// (itself included) at or above the threshold is a candidate centre, its members read from a
/// sorted window of its scores that doubles while its last entry is still at or above the
/// threshold (the window keeps its size for later rows); candidates are taken largest first
/// (ties in row order), each skipped when its centre is taken already and otherwise kept
/// without the rows taken before, if it still has `min_community_size` of them. Fewer rows than
/// `min_community_size` give no communities; a `min_community_size` or `batch_size` of 0 is an
/// [`EncoderError::InvalidArgument`].
///
/// ```
/// use sieve_encoders::Embeddings;
/// use sieve_encoders::util::{CommunityDetectionOptions, community_detection};
///
/// let e = Embeddings::from_rows(&[
///     vec![1.0, 0.0, 0.0],
///     vec![0.0, 1.0, 0.0],
///     vec![0.95, 0.05, 0.0],
///     vec![0.0, 0.9, 0.1],
///     vec![0.9, 0.1, 0.0],
///     vec![0.0, 0.0, 1.0],
/// ])
/// .unwrap();
/// let options = CommunityDetectionOptions { threshold: 0.9, min_community_size: 2, ..Default::default() };
/// assert_eq!(community_detection(&e, &options)?, [vec![0, 2, 4], vec![1, 3]]);
/// # Ok::<(), sieve_encoders::EncoderError>(())
/// ```
pub fn community_detection(embeddings: &Embeddings, options: &CommunityDetectionOptions) -> Result<Vec<Vec<usize>>> {
    let batch_size = chunk_size("batch_size", options.batch_size)?;
    let min_size = chunk_size("min_community_size", options.min_community_size)?;
    let n = embeddings.len();
    if n < min_size {
        return Ok(Vec::new());
    }
    let (dim, threshold) = (embeddings.dim(), options.threshold);
    let rows = prepare(SimilarityFn::Cosine, embeddings.as_slice(), dim);
    let all = Right::new(SimilarityFn::Cosine, &rows, dim);
    let mut sort_max_size = (2 * min_size).max(50).min(n);

    let progress = progress_bar(options.show_progress_bar, n.div_ceil(batch_size));
    let mut candidates = Vec::new();
    for (b, batch) in rows.chunks(batch_size * dim).enumerate() {
        for (r, row) in all.scores(batch).chunks_exact(n).enumerate() {
            let close = |k: &usize| row[*k] >= threshold;
            if !top_k_indices(row, min_size).last().is_some_and(close) {
                continue;
            }
            let mut members = top_k_indices(row, sort_max_size);
            while members.last().is_some_and(close) && sort_max_size < n {
                sort_max_size = (2 * sort_max_size).min(n);
                members = top_k_indices(row, sort_max_size);
            }
            members.retain(close);
            candidates.push((b * batch_size + r, members));
        }
        progress.inc(1);
    }
    progress.finish_and_clear();

    // Largest first; `sort_by_key` is stable, like Python's `sorted`.
    candidates.sort_by_key(|(_, members)| Reverse(members.len()));
    let mut used = vec![false; n];
    let mut communities = Vec::new();
    for (centre, members) in candidates {
        if used[centre] {
            continue;
        }
        let free: Vec<usize> = members.into_iter().filter(|&k| !used[k]).collect();
        if free.len() >= min_size {
            let community: Vec<usize> = std::iter::once(centre)
                .chain(free.into_iter().filter(|&k| k != centre))
                .collect();
            community.iter().for_each(|&k| used[k] = true);
            communities.push(community);
        }
    }
    communities.sort_by_key(|c| Reverse(c.len()));
    Ok(communities)
}

/// A mined pair as Python's priority queue orders it: by score (the two zeros equal), then `i`,
/// then `j`.
#[derive(Debug, Clone, Copy)]
struct Mined {
    score: f32,
    i: usize,
    j: usize,
}

impl Ord for Mined {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.score + 0.0)
            .total_cmp(&(other.score + 0.0))
            .then(self.i.cmp(&other.i))
            .then(self.j.cmp(&other.j))
    }
}

impl PartialOrd for Mined {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Mined {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Mined {}

/// Orders `a` before `b` when it is the larger score. `+ 0.0` turns -0.0 into 0.0, so the two
/// zeros tie as they do in Python and torch; NaN sorts above everything, as in `torch.topk`.
fn descending(a: f32, b: f32) -> Ordering {
    (b + 0.0).total_cmp(&(a + 0.0))
}

/// Indices of the `k` largest `scores`, largest first, the lower index first among equal scores
/// (`torch.topk(k)`, whose order among ties is unspecified).
fn top_k_indices(scores: &[f32], k: usize) -> Vec<usize> {
    if k == 0 {
        return Vec::new();
    }
    let order = |&a: &usize, &b: &usize| descending(scores[a], scores[b]).then(a.cmp(&b));
    let mut indices: Vec<usize> = (0..scores.len()).collect();
    if k < indices.len() {
        indices.select_nth_unstable_by(k - 1, order);
        indices.truncate(k);
    }
    indices.sort_unstable_by(order);
    indices
}

/// Rows as the score function sees them: L2-normalised for cosine (`cos_sim` normalises both
/// sides, with ε = 1e-12, before a dot product), as given otherwise.
fn prepare(function: SimilarityFn, rows: &[f32], dim: usize) -> Cow<'_, [f32]> {
    if function != SimilarityFn::Cosine {
        return Cow::Borrowed(rows);
    }
    let mut rows = rows.to_vec();
    for row in rows.chunks_exact_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= norm);
    }
    Cow::Owned(rows)
}

/// The right-hand side of `score_function(left, right)` over prepared rows: packed once for
/// the matrix product when the score is a dot product (cosine after [`prepare`]), kept as rows
/// for the distances.
struct Right<'a> {
    function: SimilarityFn,
    rows: &'a [f32],
    packed: Option<PackedF32>,
    dim: usize,
}

impl<'a> Right<'a> {
    fn new(function: SimilarityFn, rows: &'a [f32], dim: usize) -> Self {
        let packed = matches!(function, SimilarityFn::Cosine | SimilarityFn::Dot)
            .then(|| PackedF32::pack_strided(rows, dim, rows.len() / dim, 1, dim, F32Path::chosen()));
        Self {
            function,
            rows,
            packed,
            dim,
        }
    }

    fn len(&self) -> usize {
        self.rows.len() / self.dim
    }

    /// `[left rows, self.len()]` scores, row-major.
    fn scores(&self, left: &[f32]) -> Vec<f32> {
        let (m, n) = (left.len() / self.dim, self.len());
        let mut out = vec![0.0; m * n];
        match &self.packed {
            Some(packed) => sgemm(left, self.dim, m, packed, None, &mut out, n),
            None => out
                .par_chunks_mut(n)
                .zip(left.par_chunks_exact(self.dim))
                .for_each(|(out, a)| {
                    for (o, b) in out.iter_mut().zip(self.rows.chunks_exact(self.dim)) {
                        *o = self.function.pair(a, b);
                    }
                }),
        }
        out
    }
}

fn chunk_size(name: &str, value: usize) -> Result<usize> {
    if value == 0 {
        return Err(EncoderError::InvalidArgument(format!("{name} must be at least 1")));
    }
    Ok(value)
}

fn check_dims(corpus: &Embeddings, queries: &Embeddings) -> Result<()> {
    if !corpus.is_empty() && !queries.is_empty() && corpus.dim() != queries.dim() {
        return Err(EncoderError::DimensionMismatch {
            expected: corpus.dim(),
            got: queries.dim(),
        });
    }
    Ok(())
}

fn progress_bar(show: bool, batches: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(batches as u64);
    if let Ok(style) = ProgressStyle::with_template("Finding clusters {bar:30} {pos}/{len} [{elapsed}<{eta}]") {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    const FUNCTIONS: [SimilarityFn; 4] = [
        SimilarityFn::Cosine,
        SimilarityFn::Dot,
        SimilarityFn::Euclidean,
        SimilarityFn::Manhattan,
    ];

    /// `n` rows of `dim` deterministic values in [-1, 1) (xorshift).
    fn random(seed: u64, n: usize, dim: usize) -> Embeddings {
        let mut s = seed.max(1);
        let data = (0..n * dim)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect();
        Embeddings::new(data, dim).unwrap()
    }

    /// Every score, one pair at a time.
    fn brute_scores(f: SimilarityFn, a: &Embeddings, b: &Embeddings) -> Vec<Vec<f32>> {
        f.matrix(a, b).unwrap()
    }

    fn brute_search(f: SimilarityFn, queries: &Embeddings, corpus: &Embeddings, top_k: usize) -> Vec<Vec<SearchHit>> {
        brute_scores(f, queries, corpus)
            .into_iter()
            .map(|row| {
                top_k_indices(&row, top_k)
                    .into_iter()
                    .map(|j| SearchHit {
                        corpus_id: j,
                        score: row[j],
                    })
                    .collect()
            })
            .collect()
    }

    fn assert_hits_close(got: &[Vec<SearchHit>], want: &[Vec<SearchHit>], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (g, w) in got.iter().zip(want) {
            let ids = |h: &[SearchHit]| h.iter().map(|h| h.corpus_id).collect::<Vec<_>>();
            assert_eq!(ids(g), ids(w), "{what}");
            for (g, w) in g.iter().zip(w) {
                assert!(
                    (g.score - w.score).abs() <= 1e-4 * w.score.abs().max(1.0),
                    "{what}: {g:?} vs {w:?}"
                );
            }
        }
    }

    #[test]
    fn semantic_search_matches_brute_force_for_any_chunking() {
        let corpus = random(7, 37, 12);
        let queries = random(11, 9, 12);
        for function in FUNCTIONS {
            for top_k in [1, 5, 37, 100] {
                let want = brute_search(function, &queries, &corpus, top_k);
                for (query_chunk_size, corpus_chunk_size) in [(1, 1), (2, 3), (4, 36), (100, 500_000)] {
                    let options = SemanticSearchOptions {
                        top_k,
                        corpus_chunk_size,
                        query_chunk_size,
                        score_function: function,
                    };
                    let got = semantic_search(&queries, &corpus, &options).unwrap();
                    assert_hits_close(&got, &want, &format!("{options:?}"));
                    assert!(got.iter().all(|hits| hits.len() == top_k.min(corpus.len())));
                }
            }
        }
    }

    #[test]
    fn semantic_search_edge_cases() {
        let corpus = random(3, 5, 4);
        let empty = Embeddings::new(Vec::new(), 4).unwrap();
        let options = SemanticSearchOptions::default();
        assert!(semantic_search(&empty, &corpus, &options).unwrap().is_empty());
        assert_eq!(semantic_search(&corpus, &empty, &options).unwrap(), vec![Vec::new(); 5]);
        let none = SemanticSearchOptions { top_k: 0, ..options };
        assert_eq!(semantic_search(&corpus, &corpus, &none).unwrap(), vec![Vec::new(); 5]);

        let wide = random(3, 2, 6);
        match semantic_search(&wide, &corpus, &options) {
            Err(EncoderError::DimensionMismatch { expected: 4, got: 6 }) => {}
            other => panic!("expected a dimension mismatch, got {other:?}"),
        }
        for bad in [
            SemanticSearchOptions {
                query_chunk_size: 0,
                ..options
            },
            SemanticSearchOptions {
                corpus_chunk_size: 0,
                ..options
            },
        ] {
            assert!(matches!(
                semantic_search(&corpus, &corpus, &bad),
                Err(EncoderError::InvalidArgument(_))
            ));
        }

        // Equal scores: the lower corpus id first, across chunk boundaries too.
        let same = Embeddings::from_rows(&[vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 0.0], vec![2.0, 0.0]]).unwrap();
        let query = Embeddings::from_rows(&[vec![3.0, 0.0]]).unwrap();
        for corpus_chunk_size in [1, 2, 4] {
            let options = SemanticSearchOptions {
                top_k: 2,
                corpus_chunk_size,
                ..options
            };
            let hits = semantic_search(&query, &same, &options).unwrap();
            assert_eq!(hits[0].iter().map(|h| h.corpus_id).collect::<Vec<_>>(), [0, 2]);
        }
    }

    /// Python's result with neither `top_k` nor `max_pairs` in the way: every pair, scored by
    /// the orientation met first (row `i` before row `j`), best first.
    fn brute_pairs(f: SimilarityFn, e: &Embeddings) -> Vec<(f32, usize, usize)> {
        let scores = brute_scores(f, e, e);
        let mut pairs: Vec<(f32, usize, usize)> = (0..e.len())
            .flat_map(|i| (i + 1..e.len()).map(move |j| (i, j)))
            .map(|(i, j)| (scores[i][j], i, j))
            .collect();
        pairs.sort_by(|a, b| descending(a.0, b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        pairs
    }

    fn assert_pairs_close(got: &[(f32, usize, usize)], want: &[(f32, usize, usize)], what: &str) {
        let ids = |p: &[(f32, usize, usize)]| p.iter().map(|&(_, i, j)| (i, j)).collect::<Vec<_>>();
        assert_eq!(ids(got), ids(want), "{what}");
        for (g, w) in got.iter().zip(want) {
            assert!((g.0 - w.0).abs() <= 1e-4 * w.0.abs().max(1.0), "{what}: {g:?} vs {w:?}");
        }
    }

    #[test]
    fn paraphrase_mining_matches_brute_force_for_any_chunking() {
        let e = random(5, 23, 8);
        for function in FUNCTIONS {
            let want = brute_pairs(function, &e);
            for (query_chunk_size, corpus_chunk_size) in [(1, 1), (3, 5), (23, 23), (5_000, 100_000)] {
                let options = ParaphraseMiningOptions {
                    query_chunk_size,
                    corpus_chunk_size,
                    score_function: function,
                    ..Default::default()
                };
                let got = paraphrase_mining_embeddings(&e, &options).unwrap();
                assert_pairs_close(&got, &want, &format!("{options:?}"));
                assert!(got.iter().all(|&(_, i, j)| i < j));
            }
        }
    }

    #[test]
    fn paraphrase_mining_top_k_and_max_pairs() {
        let e = random(9, 30, 6);
        let scores = brute_scores(SimilarityFn::Cosine, &e, &e);
        // top_k = 1: each row's best other row, both orientations merged.
        let mut best: Vec<(usize, usize)> = (0..e.len())
            .map(|i| {
                let mut row = scores[i].clone();
                row[i] = f32::NEG_INFINITY;
                let j = top_k_indices(&row, 1)[0];
                (i.min(j), i.max(j))
            })
            .collect();
        best.sort_unstable();
        best.dedup();
        let options = ParaphraseMiningOptions {
            top_k: 1,
            ..Default::default()
        };
        let mut got: Vec<(usize, usize)> = paraphrase_mining_embeddings(&e, &options)
            .unwrap()
            .into_iter()
            .map(|(_, i, j)| (i, j))
            .collect();
        got.sort_unstable();
        assert_eq!(got, best);

        // max_pairs: the best pairs, whatever the chunking.
        let want = brute_pairs(SimilarityFn::Cosine, &e);
        for max_pairs in [0, 1, 5, 100] {
            for query_chunk_size in [1, 4, 5_000] {
                let options = ParaphraseMiningOptions {
                    max_pairs,
                    query_chunk_size,
                    ..Default::default()
                };
                let got = paraphrase_mining_embeddings(&e, &options).unwrap();
                assert_pairs_close(&got, &want[..max_pairs.min(want.len())], &format!("{options:?}"));
            }
        }
    }

    #[test]
    fn paraphrase_mining_edge_cases() {
        let options = ParaphraseMiningOptions::default();
        let empty = Embeddings::new(Vec::new(), 3).unwrap();
        assert!(paraphrase_mining_embeddings(&empty, &options).unwrap().is_empty());
        let one = random(1, 1, 3);
        assert!(paraphrase_mining_embeddings(&one, &options).unwrap().is_empty());
        let e = random(2, 4, 3);
        let zero = ParaphraseMiningOptions { top_k: 0, ..options };
        assert!(paraphrase_mining_embeddings(&e, &zero).unwrap().len() <= 4);
        for bad in [
            ParaphraseMiningOptions {
                query_chunk_size: 0,
                ..options
            },
            ParaphraseMiningOptions {
                corpus_chunk_size: 0,
                ..options
            },
        ] {
            assert!(matches!(
                paraphrase_mining_embeddings(&e, &bad),
                Err(EncoderError::InvalidArgument(_))
            ));
        }
        // Duplicate rows tie with the row itself; the pair is still found once.
        let dup = Embeddings::from_rows(&[vec![1.0, 0.0], vec![1.0, 0.0], vec![0.0, 1.0]]).unwrap();
        let pairs = paraphrase_mining_embeddings(&dup, &options).unwrap();
        assert_eq!(
            pairs.iter().map(|&(_, i, j)| (i, j)).collect::<Vec<_>>(),
            [(0, 1), (0, 2), (1, 2)]
        );
    }

    /// The algorithm without its sort window: every row above the threshold, all at once.
    fn brute_communities(e: &Embeddings, threshold: f32, min_size: usize) -> Vec<Vec<usize>> {
        if e.len() < min_size {
            return Vec::new();
        }
        let scores = brute_scores(SimilarityFn::Cosine, e, e);
        let mut candidates: Vec<(usize, Vec<usize>)> = scores
            .iter()
            .enumerate()
            .map(|(centre, row)| {
                let mut members = top_k_indices(row, row.len());
                members.retain(|&k| row[k] >= threshold);
                (centre, members)
            })
            .filter(|(_, m)| m.len() >= min_size)
            .collect();
        candidates.sort_by_key(|(_, m)| Reverse(m.len()));
        let mut taken = HashSet::new();
        let mut out: Vec<Vec<usize>> = Vec::new();
        for (centre, members) in candidates {
            if taken.contains(&centre) {
                continue;
            }
            let free: Vec<usize> = members.into_iter().filter(|k| !taken.contains(k)).collect();
            if free.len() >= min_size {
                let mut community = vec![centre];
                community.extend(free.into_iter().filter(|&k| k != centre));
                taken.extend(community.iter().copied());
                out.push(community);
            }
        }
        out.sort_by_key(|c| Reverse(c.len()));
        out
    }

    /// Points scattered around `centres`, `sizes[c]` of them each, interleaved, plus noise rows.
    fn clusters(sizes: &[usize], dim: usize, spread: f32) -> Embeddings {
        let centres = random(17, sizes.len(), dim);
        let noise = random(23, sizes.iter().sum::<usize>() + 10, dim);
        let mut rows = Vec::new();
        let mut left = sizes.to_vec();
        let mut k = 0;
        while left.iter().any(|&l| l > 0) {
            for (c, l) in left.iter_mut().enumerate() {
                if *l > 0 {
                    *l -= 1;
                    rows.push(
                        centres
                            .row(c)
                            .iter()
                            .zip(noise.row(k))
                            .map(|(x, n)| x + spread * n)
                            .collect(),
                    );
                    k += 1;
                }
            }
        }
        rows.extend((0..10).map(|i| noise.row(k + i).to_vec()));
        Embeddings::from_rows(&rows).unwrap()
    }

    #[test]
    fn community_detection_matches_brute_force() {
        // A cluster of 130 makes the 50-row sort window double twice.
        let e = clusters(&[130, 60, 20, 3], 16, 0.15);
        for (threshold, min_community_size) in [(0.75, 10), (0.9, 2), (0.5, 1), (0.95, 3), (0.75, 223), (0.75, 1000)] {
            let want = brute_communities(&e, threshold, min_community_size);
            for batch_size in [1, 7, 1024] {
                let options = CommunityDetectionOptions {
                    threshold,
                    min_community_size,
                    batch_size,
                    show_progress_bar: false,
                };
                assert_eq!(community_detection(&e, &options).unwrap(), want, "{options:?}");
            }
        }
        let big = community_detection(&e, &CommunityDetectionOptions::default()).unwrap();
        assert!(
            big.len() >= 3 && big[0].len() >= 100,
            "{:?}",
            big.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }

    #[test]
    fn community_detection_edge_cases() {
        let options = CommunityDetectionOptions::default();
        let empty = Embeddings::new(Vec::new(), 3).unwrap();
        assert!(community_detection(&empty, &options).unwrap().is_empty());
        // Fewer rows than min_community_size: none.
        let same = Embeddings::from_rows(&[vec![1.0, 0.0], vec![2.0, 0.1], vec![3.0, 0.0]]).unwrap();
        assert!(community_detection(&same, &options).unwrap().is_empty());
        // Rows 0 and 2 point the same way: the centre first, then the lower index.
        let three = CommunityDetectionOptions {
            min_community_size: 3,
            ..options
        };
        assert_eq!(community_detection(&same, &three).unwrap(), [vec![0, 2, 1]]);
        let e = random(4, 5, 3);
        for bad in [
            CommunityDetectionOptions {
                min_community_size: 0,
                ..options
            },
            CommunityDetectionOptions {
                batch_size: 0,
                ..options
            },
        ] {
            assert!(matches!(
                community_detection(&e, &bad),
                Err(EncoderError::InvalidArgument(_))
            ));
        }
        // A zero row has cosine 0 with everything, itself included.
        let zero = Embeddings::from_rows(&[vec![0.0, 0.0], vec![1.0, 0.0]]).unwrap();
        let single = CommunityDetectionOptions {
            min_community_size: 1,
            ..options
        };
        assert_eq!(community_detection(&zero, &single).unwrap(), [vec![1]]);
    }

    #[test]
    fn top_k_orders_ties_by_index() {
        let scores = [0.5, 1.0, 0.5, -0.0, 0.0, 1.0, f32::NAN];
        assert_eq!(top_k_indices(&scores, 4), [6, 1, 5, 0]);
        assert_eq!(top_k_indices(&scores, 7), [6, 1, 5, 0, 2, 3, 4]);
        assert_eq!(top_k_indices(&scores, 9).len(), 7);
        assert!(top_k_indices(&scores, 0).is_empty());
    }
}
