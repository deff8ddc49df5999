//! CrossEncoder parity with sentence-transformers 6.2 on the trained cross-encoders and the
//! 3-label BERT fixture.

mod common;

use common::*;
use sieve::{CrossEncoder, PredictOptions, RankOptions, ScoreActivation};

const TOL: f32 = 1e-5;

fn check_model(id: &str, golden_file: &str) {
    let g = golden(golden_file);
    let model = CrossEncoder::from_pretrained(id).unwrap_or_else(|e| panic!("{e}\n{}", hub_hint()));
    assert_eq!(model.max_length() as u64, g["max_length"].as_u64().unwrap());
    assert_eq!(model.activation(), ScoreActivation::Sigmoid);
    let query = g["query"].as_str().unwrap();
    let corpus = strs(&g["corpus"]);
    let docs: Vec<&str> = corpus.iter().map(String::as_str).collect();
    let pairs: Vec<(&str, &str)> = docs.iter().map(|d| (query, *d)).collect();

    let batch = model.tokenizer().encode_pairs(&pairs).unwrap();
    let want_ids = unpadded(&g["features"]["input_ids"], &g["features"]["attention_mask"]);
    for (i, want) in want_ids.iter().enumerate() {
        assert_eq!(&batch.ids(i), want, "{id}: token ids of pair {i}");
    }

    let scores = model.predict(&pairs).unwrap();
    assert_close(
        &format!("{id} sigmoid scores"),
        &scores,
        &f32s(&g["scores_sigmoid"]),
        TOL,
    );
    let raw = PredictOptions {
        activation: Some(ScoreActivation::Identity),
        ..Default::default()
    };
    let logits = model.predict_with(&pairs, &raw).unwrap();
    assert_close(&format!("{id} logits"), logits.as_slice(), &f32s(&g["logits"]), TOL);

    let ranked = model.rank(query, &docs, &RankOptions::default()).unwrap();
    let want_rank = g["rank"].as_array().unwrap();
    assert_eq!(ranked.len(), want_rank.len());
    for (hit, want) in ranked.iter().zip(want_rank) {
        assert_eq!(
            hit.corpus_id as u64,
            want["corpus_id"].as_u64().unwrap(),
            "{id}: rank order"
        );
        assert!((hit.score - want["score"].as_f64().unwrap() as f32).abs() <= TOL);
    }
    let top3 = model
        .rank(
            query,
            &docs,
            &RankOptions {
                top_k: Some(3),
                return_documents: true,
                ..Default::default()
            },
        )
        .unwrap();
    for (hit, want) in top3.iter().zip(g["rank_top3_with_documents"].as_array().unwrap()) {
        assert_eq!(hit.corpus_id as u64, want["corpus_id"].as_u64().unwrap());
        assert_eq!(hit.text.as_deref(), want["text"].as_str());
    }

    // Long SciFact pairs: truncated longest-first to max_length, exactly as transformers does.
    for case in g["scifact_truncated_pairs"].as_array().unwrap() {
        let pair = (case["query"].as_str().unwrap(), case["document"].as_str().unwrap());
        let batch = model.tokenizer().encode_pairs(&[pair]).unwrap();
        assert_eq!(
            batch.ids(0),
            u32s(&case["input_ids"]),
            "{id}: truncated ids of doc {}",
            case["doc_id"]
        );
        assert_eq!(batch.token_type_ids, u32s(&case["token_type_ids"]));
        let logit = model.predict_with(&[pair], &raw).unwrap();
        assert_close(
            &format!("{id} scifact logit {}", case["doc_id"]),
            logit.as_slice(),
            &[case["logit"].as_f64().unwrap() as f32],
            TOL,
        );
    }
}

#[test]
fn stsb_cross_encoder_matches_sentence_transformers() {
    check_model("sieve/stsb-minilm-l6-ce", "golden/stsb-minilm-l6-ce.json");
}

#[test]
fn scifact_reranker_matches_sentence_transformers() {
    check_model(
        "sieve/scifact-minilm-l6-reranker",
        "golden/scifact-minilm-l6-reranker.json",
    );
}

#[test]
fn three_label_nli_fixture() {
    let g = golden("fixtures/bert-nli-ce/golden.json");
    let model = CrossEncoder::load(fixture("bert-nli-ce")).unwrap();
    assert_eq!(model.num_labels(), 3);
    assert_eq!(model.activation(), ScoreActivation::Identity);
    let pairs = common::pairs(&g["pairs"]);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let batch = model.tokenizer().encode_pairs(&pairs).unwrap();
    for (i, want) in unpadded(&g["features"]["input_ids"], &g["features"]["attention_mask"])
        .iter()
        .enumerate()
    {
        assert_eq!(&batch.ids(i), want, "token ids of pair {i}");
    }
    let logits = model.predict_with(&pairs, &PredictOptions::default()).unwrap();
    assert_eq!(logits.shape(), [6, 3]);
    assert_close("nli logits", logits.as_slice(), &rows(&g["logits"]).concat(), TOL);
    let softmax = PredictOptions {
        activation: Some(ScoreActivation::Softmax),
        ..Default::default()
    };
    let probs = model.predict_with(&pairs, &softmax).unwrap();
    assert_close(
        "nli softmax",
        probs.as_slice(),
        &rows(&g["predict_softmax"]).concat(),
        TOL,
    );
    let labels: Vec<&str> = logits
        .rows()
        .map(|r| {
            let best = (0..r.len()).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap();
            model.id2label()[&best].as_str()
        })
        .collect();
    assert_eq!(labels, strs(&g["argmax_labels"]));
    // A single score per pair makes no sense for three labels: a clear error, not a guess.
    let err = model.predict(&pairs).unwrap_err().to_string();
    assert!(err.contains("3 labels"), "{err}");
}

#[test]
fn empty_pair_list_gives_no_scores() {
    let model = CrossEncoder::load(fixture("bert-nli-ce")).unwrap();
    assert_eq!(
        model.predict_with(&[], &PredictOptions::default()).unwrap().shape(),
        [0, 3]
    );
}
