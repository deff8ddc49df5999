//! int8 and bf16 inference on the CPU against sentence-transformers' f32 golden values.
//!
//! These modes change the numbers on purpose, so the bounds here are the drift each causes,
//! with room to spare, and each is far below what a broken kernel gives (a wrong tile, a
//! missing zero-point correction or a bad scale moves a cosine by tenths and scrambles rankings).
//!
//! - int8 (dynamic quantization: weights per output channel at 8 bits, activations per row at
//!   7 bits): every Linear output carries a relative error of about 1.5%, partly averaged out
//!   over six layers. Measured here (AVX2 machine; every path computes the same integers):
//!   all-MiniLM-L6-v2 embeddings at cosine ≥ 0.9947 to f32, similarities within 0.0121,
//!   splade-tiny similarities within 0.0126 (scaled like a cosine), cross-encoder scores within
//!   0.0264 (stsb) and 0.0136 (reranker). Bounds: embedding cosine ≥ 0.99, similarities within
//!   0.02 (the quality bar), scores within 0.03, the golden orderings kept.
//! - bf16 (8 significant bits per input, f32 accumulation): rounding errors of 2^-8 per input
//!   against int8's 2^-7 per activation step, so the same bounds apply. It runs only where the
//!   CPU has AVX-512 BF16; elsewhere the load must fail with an error that says so (the case on
//!   the machine these bounds were measured on, so bf16's own drift is not measured yet).

mod common;

use std::sync::OnceLock;

use common::*;
use sieve::{
    CrossEncoder, Dtype, EncoderError, LoadOptions, PredictOptions, ScoreActivation, SentenceTransformer, SparseEncoder,
};

/// Smallest cosine between an embedding and its f32 golden value.
const MIN_EMBEDDING_COSINE: f32 = 0.99;
/// Largest difference between a similarity and its f32 golden value.
const SIMILARITY_TOL: f32 = 0.02;

fn options(dtype: Dtype) -> LoadOptions {
    LoadOptions {
        dtype,
        ..LoadOptions::default()
    }
}

/// The model in `dtype`, or `None` (with the reason printed) where this CPU cannot run it,
/// after checking that the refusal is the documented one.
fn load<T>(dtype: Dtype, load: impl FnOnce(&LoadOptions) -> Result<T, EncoderError>) -> Option<T> {
    match load(&options(dtype)) {
        Ok(model) => Some(model),
        Err(EncoderError::DeviceUnavailable { reason, .. }) if dtype == Dtype::Bf16 => {
            assert!(reason.contains("AVX-512 BF16"), "unexpected reason: {reason}");
            eprintln!("skipped bf16: {reason}");
            None
        }
        Err(e) => panic!("{e}\n{}", hub_hint()),
    }
}

fn minilm(dtype: Dtype) -> Option<&'static SentenceTransformer> {
    static INT8: OnceLock<Option<SentenceTransformer>> = OnceLock::new();
    static BF16: OnceLock<Option<SentenceTransformer>> = OnceLock::new();
    let cell = if dtype == Dtype::Int8 { &INT8 } else { &BF16 };
    cell.get_or_init(|| {
        load(dtype, |o| {
            SentenceTransformer::from_pretrained_with("sentence-transformers/all-MiniLM-L6-v2", o)
        })
    })
    .as_ref()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn check_minilm(dtype: Dtype) {
    let Some(model) = minilm(dtype) else { return };
    assert_eq!(model.dtype(), dtype);
    let g = golden("golden/all-MiniLM-L6-v2.json");
    let sentences = strs(&g["sentences"]);
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let embeddings = model.encode(&texts).unwrap();
    let want = rows(&g["embeddings"]);
    let mut lowest = 1.0f32;
    for (i, (got, want)) in embeddings.rows().zip(&want).enumerate() {
        let c = cosine(got, want);
        lowest = lowest.min(c);
        assert!(c >= MIN_EMBEDDING_COSINE, "{dtype} sentence {i}: cosine to f32 {c}");
    }
    let sim = model.similarity(&embeddings, &embeddings).unwrap();
    assert_close(
        &format!("{dtype} similarity"),
        &sim.concat(),
        &rows(&g["similarity"]).concat(),
        SIMILARITY_TOL,
    );
    let drift = max_abs_diff(&sim.concat(), &rows(&g["similarity"]).concat());
    eprintln!("{dtype} minilm: lowest cosine to f32 {lowest:.5}, similarity drift {drift:.4}");
    // The seed's order: 0.6660 > 0.1411 > 0.1046.
    assert!(sim[0][1] > sim[1][2] && sim[1][2] > sim[0][2], "{dtype}: {sim:?}");

    let g = golden("golden/all-MiniLM-L6-v2.long-docs.json");
    let texts = strs(&g["texts"]);
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let embeddings = model.encode(&texts).unwrap();
    // Quantization is per row, so neither batching nor running whole sequences as one task
    // (a batch of documents) changes a value.
    let one_by_one = model
        .encode_with(
            &texts,
            &sieve::EncodeOptions {
                batch_size: 1,
                ..Default::default()
            },
        )
        .unwrap();
    assert_close(
        &format!("{dtype} long documents, batch vs one by one"),
        embeddings.as_slice(),
        one_by_one.as_slice(),
        1e-5,
    );
    for (i, (got, want)) in embeddings.rows().zip(&rows(&g["embeddings"])).enumerate() {
        let c = cosine(got, want);
        assert!(
            c >= MIN_EMBEDDING_COSINE,
            "{dtype} long document {i}: cosine to f32 {c}"
        );
    }
}

#[test]
fn minilm_int8_stays_close_to_f32() {
    check_minilm(Dtype::Int8);
}

#[test]
fn minilm_bf16_stays_close_to_f32_or_is_refused() {
    check_minilm(Dtype::Bf16);
}

/// Sigmoid scores within 0.03 of f32 (a logit drift of ~0.1 at the steepest point) and the
/// golden ranking of the nine sentences wherever f32 separates two of them by more than the
/// drift (several golden scores differ by 1e-4, which no 8-bit arithmetic can order).
fn check_cross_encoder(dtype: Dtype, id: &str, golden_file: &str) {
    let Some(model) = load(dtype, |o| CrossEncoder::from_pretrained_with(id, o)) else {
        return;
    };
    let g = golden(golden_file);
    let query = g["query"].as_str().unwrap();
    let corpus = strs(&g["corpus"]);
    let pairs: Vec<(&str, &str)> = corpus.iter().map(|d| (query, d.as_str())).collect();
    let scores = model.predict(&pairs).unwrap();
    assert_close(
        &format!("{id} {dtype} scores"),
        &scores,
        &f32s(&g["scores_sigmoid"]),
        0.03,
    );
    let golden_scores = f32s(&g["scores_sigmoid"]);
    for a in 0..scores.len() {
        for b in 0..scores.len() {
            if golden_scores[a] > golden_scores[b] + 0.03 {
                assert!(
                    scores[a] > scores[b],
                    "{id} {dtype}: pair {a} ({}) must rank above pair {b} ({})",
                    scores[a],
                    scores[b]
                );
            }
        }
    }
    // Rerank-shaped pairs: a query with a long, truncated document; scores within 0.03.
    let raw = PredictOptions {
        activation: Some(ScoreActivation::Identity),
        ..Default::default()
    };
    let sigmoid = |x: f32| 1.0 / (1.0 + (-x).exp());
    let mut worst = max_abs_diff(&scores, &golden_scores);
    for case in g["scifact_truncated_pairs"].as_array().unwrap() {
        let pair = (case["query"].as_str().unwrap(), case["document"].as_str().unwrap());
        let logit = model.predict_with(&[pair], &raw).unwrap().as_slice()[0];
        let want = case["logit"].as_f64().unwrap() as f32;
        let drift = (sigmoid(logit) - sigmoid(want)).abs();
        worst = worst.max(drift);
        assert!(drift < 0.03, "{id} {dtype}: scifact logit {logit} vs {want}");
    }
    eprintln!("{id} {dtype}: worst score drift {worst:.4}");
}

#[test]
fn cross_encoders_in_int8_keep_the_golden_ranking() {
    check_cross_encoder(Dtype::Int8, "sieve/stsb-minilm-l6-ce", "golden/stsb-minilm-l6-ce.json");
    check_cross_encoder(
        Dtype::Int8,
        "sieve/scifact-minilm-l6-reranker",
        "golden/scifact-minilm-l6-reranker.json",
    );
}

#[test]
fn cross_encoders_in_bf16_keep_the_golden_ranking_or_are_refused() {
    check_cross_encoder(Dtype::Bf16, "sieve/stsb-minilm-l6-ce", "golden/stsb-minilm-l6-ce.json");
}

/// SPLADE weights drift like the embeddings; what a user sees is the similarity, here within
/// 0.02 of f32 once scaled like a cosine (by √(aa·bb) of the golden self-similarities: the
/// dot products are ~30, so this is a drift of ~0.6 on the 0.14 off-diagonal pair), and the
/// strongest tokens (the golden top 5 all still active).
fn check_splade(dtype: Dtype) {
    let Some(model) = load(dtype, |o| {
        SparseEncoder::from_pretrained_with("rasyosef/splade-tiny", o)
    }) else {
        return;
    };
    let g = golden("golden/splade-tiny.json");
    let sentences = strs(&g["sentences"]);
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let embeddings = model.encode(&texts).unwrap();
    let sim = model.similarity(&embeddings, &embeddings);
    let want = rows(&g["similarity"]);
    let mut worst = 0.0f32;
    for a in 0..want.len() {
        for b in 0..want.len() {
            let scale = (want[a][a] * want[b][b]).sqrt();
            let drift = (sim[a][b] - want[a][b]).abs() / scale;
            worst = worst.max(drift);
            assert!(
                drift <= SIMILARITY_TOL,
                "{dtype} splade similarity [{a}][{b}]: {} vs {}",
                sim[a][b],
                want[a][b]
            );
        }
    }
    eprintln!("{dtype} splade: worst scaled similarity drift {worst:.4}");
    for (i, case) in g["per_sentence"].as_array().unwrap().iter().enumerate() {
        let row = embeddings.row(i);
        for top in case["top10"].as_array().unwrap().iter().take(5) {
            let token = top[0].as_str().unwrap();
            let id = model.tokenizer().token_to_id(token).unwrap();
            assert!(row.indices.contains(&id), "{dtype} sentence {i}: `{token}` lost");
        }
    }
}

#[test]
fn splade_in_int8_keeps_similarities_and_top_tokens() {
    check_splade(Dtype::Int8);
}

#[test]
fn splade_in_bf16_keeps_similarities_and_top_tokens_or_is_refused() {
    check_splade(Dtype::Bf16);
}

#[test]
fn half_precision_on_the_cpu_is_refused_with_the_alternatives() {
    let Err(err) =
        SentenceTransformer::from_pretrained_with("sentence-transformers/all-MiniLM-L6-v2", &options(Dtype::F16))
    else {
        panic!("f16 on the CPU must be refused");
    };
    let err = err.to_string();
    assert!(err.contains("f16") && err.contains("int8"), "{err}");
}
