//! The evaluations `sieve train` runs after each epoch, on real models, checked against the
//! engine's own search: SPLADE ranking the whole corpus against the sparse index, and a reranker
//! over the first stage against the engine's rerank stage.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sieve_encoders::training::{ModelKind, TrainableModel};
use sieve_engine::eval::{Qrels, mrr_at, ndcg_at};
use sieve_engine::{CollectionConfig, DEFAULT_SPARSE_MODEL, Rerank};
use sieve_train::evaluation::{RetrievalScores, evaluate_reranker, evaluate_sparse};

use common::DOCS;

/// Questions, each judged against one document; the last one matches two.
const QUERIES: [(&str, &str, &[&str]); 5] = [
    ("q-tides", "why do the tides rise and fall", &["tides"]),
    (
        "q-moon",
        "how long does the moon take to go around the earth",
        &["moon"],
    ),
    ("q-soup", "a quick recipe for tomato soup", &["soup"]),
    ("q-guitar", "tuning a guitar without a tuner", &["guitar"]),
    ("q-sea", "the sea and its oceans", &["ocean", "waves"]),
];

const RERANKER: &str = "sieve/stsb-minilm-l6-ce";

fn scratch(name: &str) -> common::ScratchDir {
    common::ScratchDir::new(&format!("train-eval-{name}"))
}

fn queries() -> (BTreeMap<String, String>, Qrels) {
    let mut texts = BTreeMap::new();
    let mut qrels = Qrels::new();
    for (id, text, relevant) in QUERIES {
        texts.insert(id.to_string(), text.to_string());
        qrels.insert(id.to_string(), relevant.iter().map(|d| (d.to_string(), 1)).collect());
    }
    // A query without judgments is not evaluated.
    texts.insert("q-unjudged".into(), "lamb chops".into());
    (texts, qrels)
}

/// The model `id` from the hub cache, saved as a folder (what `sieve train` evaluates), or
/// `None` with the reason printed.
fn saved(kind: ModelKind, id: &str, dir: &Path) -> Option<PathBuf> {
    match TrainableModel::from_pretrained(kind, id) {
        Ok(model) => {
            model.save(dir).unwrap();
            Some(dir.to_path_buf())
        }
        Err(e) => {
            eprintln!("skipped: {id} is not in the Hugging Face cache (run scripts/fetch-models): {e}");
            None
        }
    }
}

/// Mean nDCG@10 / MRR@10 of `search(query)`'s ids over the judged queries.
fn scores_of(qrels: &Qrels, texts: &BTreeMap<String, String>, search: impl Fn(&str) -> Vec<String>) -> RetrievalScores {
    let (mut ndcg, mut mrr, mut n) = (0.0, 0.0, 0);
    for (id, judged) in qrels {
        let ids = search(&texts[id]);
        let ranked: Vec<&str> = ids.iter().map(String::as_str).collect();
        ndcg += ndcg_at(10, &ranked, judged);
        mrr += mrr_at(10, &ranked, judged);
        n += 1;
    }
    RetrievalScores {
        ndcg_at_10: ndcg / n as f64,
        mrr_at_10: mrr / n as f64,
        queries: n,
    }
}

fn assert_close(got: RetrievalScores, expected: RetrievalScores) {
    assert_eq!(got.queries, expected.queries);
    assert!(
        (got.ndcg_at_10 - expected.ndcg_at_10).abs() < 1e-9 && (got.mrr_at_10 - expected.mrr_at_10).abs() < 1e-9,
        "evaluation {got:?}, the engine's search {expected:?}"
    );
}

#[test]
fn sparse_evaluation_agrees_with_the_sparse_index() {
    let root = scratch("sparse");
    let Some(model) = saved(ModelKind::SparseEncoder, DEFAULT_SPARSE_MODEL, &root.join("model")) else {
        return;
    };
    let (texts, qrels) = queries();
    let corpus: BTreeMap<String, String> = DOCS.iter().map(|(id, t)| (id.to_string(), t.to_string())).collect();
    let got = evaluate_sparse(&model, &texts, &corpus, &qrels).unwrap();

    let config = CollectionConfig {
        dense: None,
        sparse: Some(model.to_string_lossy().into_owned()),
        text: false,
        reranker: None,
        ..CollectionConfig::default()
    };
    let collection = common::docs_collection(&root.join("db"), config).unwrap();
    let expected = scores_of(&qrels, &texts, |q| {
        let hits = collection.search(q).sparse().no_rerank().top_k(10).run().unwrap();
        hits.into_iter().map(|h| h.id).collect()
    });
    assert_close(got, expected);
    assert!(got.ndcg_at_10 > 0.5, "splade-tiny should find these: {got:?}");

    // Judgments that point at the wrong documents score lower: the ids are really compared.
    let shifted: Qrels = qrels
        .keys()
        .map(|q| (q.clone(), [("lamb".to_string(), 1)].into_iter().collect()))
        .collect();
    let wrong = evaluate_sparse(&model, &texts, &corpus, &shifted).unwrap();
    assert!(wrong.ndcg_at_10 < got.ndcg_at_10, "{wrong:?} vs {got:?}");

    let none = evaluate_sparse(&model, &texts, &corpus, &Qrels::new()).unwrap_err();
    assert!(none.to_string().contains("no query has judgments"), "{none}");
}

#[test]
fn reranker_evaluation_agrees_with_the_rerank_stage() {
    let root = scratch("rerank");
    let Some(model) = saved(ModelKind::CrossEncoder, RERANKER, &root.join("model")) else {
        return;
    };
    let (texts, qrels) = queries();
    let config = CollectionConfig {
        reranker: Some(RERANKER.to_string()),
        ..CollectionConfig::default()
    };
    let collection = match common::docs_collection(&root.join("db"), config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skipped: the default models are not in the Hugging Face cache (run scripts/fetch-models): {e}");
            return;
        }
    };
    for depth in [3, 10] {
        let got = evaluate_reranker(&model, &collection, &texts, &qrels, depth, None).unwrap();
        let expected = scores_of(&qrels, &texts, |q| {
            let hits = collection
                .search(q)
                .rerank(depth)
                .rerank_mode(Rerank::Replace)
                .top_k(depth)
                .run()
                .unwrap();
            hits.into_iter().map(|h| h.id).collect()
        });
        assert_close(got, expected);
    }
}
