//! `sieve::encoders::util` against sentence-transformers 6.2's `util`: all-MiniLM-L6-v2
//! embeddings of the first 2,000 SciFact titles, encoded here, must give Python's communities,
//! paraphrase pairs and semantic-search hits (`tests/fixtures/util/golden.json`, written by
//! `generate.py` beside it from PyTorch's embeddings of the same titles).
//!
//! sieve's embeddings match PyTorch's to ~1e-6, so scores are compared to 1e-4, and two items
//! whose scores are within 1e-5 of each other may trade places (their order is noise). Skipped,
//! with the reason printed, when SciFact or the model is missing.

mod common;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::OnceLock;

use serde_json::Value;
use sieve::encoders::util::{
    CommunityDetectionOptions, ParaphraseMiningOptions, SemanticSearchOptions, community_detection,
    paraphrase_mining_embeddings, semantic_search,
};
use sieve::{Embeddings, SentenceTransformer, SimilarityFn};

use common::scifact::DENSE_MODEL;

const SCORE_TOL: f32 = 1e-4;
const TIE: f32 = 1e-5;

struct Fixture {
    golden: Value,
    titles: Embeddings,
    queries: Embeddings,
}

/// The golden file and sieve's embeddings of the same titles and queries, encoded once for all
/// tests; `None` (after saying why) when the data or the model is missing.
fn fixture() -> Option<&'static Fixture> {
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let golden = common::read_golden(&common::repo_fixture("util").join("golden.json"));
            let dir = common::scifact::dir();
            let (Some(titles), Some(queries)) = (
                first_field(&dir.join("corpus.jsonl"), "title", count(&golden["titles"])),
                first_field(&dir.join("queries.jsonl"), "text", count(&golden["queries"])),
            ) else {
                eprintln!("skipped: SciFact not found under {}", dir.display());
                return None;
            };
            let model = match SentenceTransformer::from_pretrained(DENSE_MODEL) {
                Ok(model) => model,
                Err(e) => {
                    eprintln!("skipped: {e}\n{}", common::hub_hint());
                    return None;
                }
            };
            let encode = |texts: &[String]| {
                let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                model.encode(&texts).expect("encode")
            };
            let fixture = Fixture {
                titles: encode(&titles),
                queries: encode(&queries),
                golden,
            };
            let head = common::rows(&fixture.golden["embeddings_head"]);
            for (i, want) in head.iter().enumerate() {
                common::assert_close(&format!("title {i} embedding"), fixture.titles.row(i), want, 1e-5);
            }
            Some(fixture)
        })
        .as_ref()
}

fn count(v: &Value) -> usize {
    v.as_u64().expect("count") as usize
}

/// `field` of the first `n` lines of a JSONL file; `None` when the file is missing or short.
fn first_field(path: &std::path::Path, field: &str, n: usize) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let values: Vec<String> = text
        .lines()
        .take(n)
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("JSON line");
            v[field].as_str().expect("string field").to_string()
        })
        .collect();
    (values.len() == n).then_some(values)
}

fn usize_of(v: &Value) -> usize {
    v.as_u64().expect("integer") as usize
}

/// `got` and `want` rank the same items with scores within [`SCORE_TOL`]; where they differ,
/// the item in `got` scores within [`TIE`] of the one Python ranked there (a near-tie whose
/// order, or at the cut, whose membership, is noise). Returns the largest score difference of
/// an item in both and the number of places that differ.
fn assert_ranked<T: Eq + std::hash::Hash + Debug + Copy>(
    what: &str,
    got: &[(T, f32)],
    want: &[(T, f32)],
) -> (f32, usize) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?}\nvs Python {want:?}");
    let wanted: HashMap<T, f32> = want.iter().copied().collect();
    let mut max_diff = 0.0f32;
    let mut moved = 0;
    for (k, (&(id, score), &(want_id, want_score))) in got.iter().zip(want).enumerate() {
        if let Some(&python) = wanted.get(&id) {
            max_diff = max_diff.max((score - python).abs());
        }
        assert!(
            (score - want_score).abs() <= SCORE_TOL,
            "{what}: place {k} scores {score} here, {want_score} in Python"
        );
        if id != want_id {
            moved += 1;
            let python = wanted.get(&id).copied().unwrap_or(score);
            assert!(
                (python - want_score).abs() <= TIE,
                "{what}: place {k} holds {id:?} ({score}) here, {want_id:?} ({want_score}) in Python: not a near-tie"
            );
        }
    }
    (max_diff, moved)
}

#[test]
fn community_detection_matches_python() {
    let Some(f) = fixture() else { return };
    let cosine = |i: usize, j: usize| SimilarityFn::Cosine.pair(f.titles.row(i), f.titles.row(j));
    for case in f.golden["community_detection"].as_array().expect("cases") {
        let options = CommunityDetectionOptions {
            threshold: case["threshold"].as_f64().expect("threshold") as f32,
            min_community_size: usize_of(&case["min_community_size"]),
            ..Default::default()
        };
        let want: Vec<Vec<usize>> = case["communities"]
            .as_array()
            .expect("communities")
            .iter()
            .map(|c| c.as_array().expect("community").iter().map(usize_of).collect())
            .collect();
        let got = community_detection(&f.titles, &options).expect("community_detection");
        let what = format!(
            "threshold {} min size {}",
            options.threshold, options.min_community_size
        );
        assert_eq!(got.len(), want.len(), "{what}: number of communities");
        let mut moved = 0;
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g[0], w[0], "{what}: centre");
            // Members by similarity to the centre: Python's order, up to near-ties.
            let scored = |c: &[usize]| c[1..].iter().map(|&m| (m, cosine(c[0], m))).collect::<Vec<_>>();
            moved += assert_ranked(&what, &scored(g), &scored(w)).1;
        }
        eprintln!(
            "{what}: {} communities (largest {}), {moved} members in near-tied order",
            got.len(),
            got.first().map_or(0, Vec::len)
        );
        let batched = CommunityDetectionOptions {
            batch_size: 300,
            ..options
        };
        assert_eq!(
            community_detection(&f.titles, &batched).unwrap(),
            got,
            "{what}: batch size 300"
        );
    }
}

#[test]
fn paraphrase_mining_matches_python() {
    let Some(f) = fixture() else { return };
    let golden = &f.golden["paraphrase_mining"];
    let options = ParaphraseMiningOptions {
        query_chunk_size: usize_of(&golden["query_chunk_size"]),
        corpus_chunk_size: usize_of(&golden["corpus_chunk_size"]),
        max_pairs: usize_of(&golden["max_pairs"]),
        top_k: usize_of(&golden["top_k"]),
        score_function: SimilarityFn::Cosine,
    };
    let want: Vec<((usize, usize), f32)> = golden["pairs"]
        .as_array()
        .expect("pairs")
        .iter()
        .map(|p| ((usize_of(&p[1]), usize_of(&p[2])), p[0].as_f64().expect("score") as f32))
        .collect();
    let got: Vec<((usize, usize), f32)> = paraphrase_mining_embeddings(&f.titles, &options)
        .expect("paraphrase_mining_embeddings")
        .into_iter()
        .map(|(score, i, j)| ((i, j), score))
        .collect();
    let (max_diff, moved) = assert_ranked("paraphrase pairs", &got, &want);
    eprintln!(
        "paraphrase_mining_embeddings: {} pairs, max |score diff| = {max_diff:e}, {moved} places near-tied",
        got.len()
    );
    let unchunked = paraphrase_mining_embeddings(
        &f.titles,
        &ParaphraseMiningOptions {
            max_pairs: options.max_pairs,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        unchunked.iter().map(|&(s, i, j)| ((i, j), s)).collect::<Vec<_>>(),
        got,
        "default chunk sizes"
    );
}

#[test]
fn semantic_search_matches_python() {
    let Some(f) = fixture() else { return };
    let golden = &f.golden["semantic_search"];
    let options = SemanticSearchOptions {
        top_k: usize_of(&golden["top_k"]),
        corpus_chunk_size: usize_of(&golden["corpus_chunk_size"]),
        query_chunk_size: usize_of(&golden["query_chunk_size"]),
        score_function: SimilarityFn::Cosine,
    };
    let got = semantic_search(&f.queries, &f.titles, &options).expect("semantic_search");
    let want = golden["hits"].as_array().expect("hits");
    assert_eq!(got.len(), want.len());
    let (mut max_diff, mut moved) = (0.0f32, 0);
    for (q, (hits, want)) in got.iter().zip(want).enumerate() {
        let want: Vec<(usize, f32)> = want
            .as_array()
            .expect("query hits")
            .iter()
            .map(|h| (usize_of(&h[0]), h[1].as_f64().expect("score") as f32))
            .collect();
        let hits: Vec<(usize, f32)> = hits.iter().map(|h| (h.corpus_id, h.score)).collect();
        let (diff, m) = assert_ranked(&format!("query {q}"), &hits, &want);
        max_diff = max_diff.max(diff);
        moved += m;
    }
    eprintln!(
        "semantic_search: {} queries, max |score diff| = {max_diff:e}, {moved} places near-tied",
        got.len()
    );
    let unchunked = semantic_search(&f.queries, &f.titles, &SemanticSearchOptions::default()).unwrap();
    assert_eq!(unchunked, got, "default chunk sizes");
}
