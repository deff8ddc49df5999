//! RoBERTa, XLM-RoBERTa and MPNet parity with sentence-transformers 6.2 on tiny random fixtures:
//! `roberta-ce` and `xlmr-ce` from `../shared`, the MPNet and RoBERTa-SPLADE ones from
//! `tests/fixtures` (see the `generate_*.py` scripts there).

mod common;

use std::path::Path;

use common::*;
use sieve::{CrossEncoder, PredictOptions, RankOptions, SentenceTransformer, SparseEncoder};

const TOL: f32 = 1e-5;
/// SPLADE weights, as in `tests/sparse_encoder.rs`.
const SPLADE_TOL: f32 = 1e-4;

/// Token ids, logits, sigmoid scores and `rank` of a one-label cross-encoder fixture.
fn cross_encoder_case(name: &str, dir: &Path) {
    let g = read_golden(&dir.join("golden.json"));
    let model = CrossEncoder::load(dir).unwrap();
    assert_eq!(model.num_labels(), 1);
    let owned = pairs(&g["pairs"]);
    let pairs: Vec<(&str, &str)> = owned.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();

    let batch = model.tokenizer().encode_pairs(&pairs).unwrap();
    for (i, want) in unpadded(&g["features"]["input_ids"], &g["features"]["attention_mask"])
        .iter()
        .enumerate()
    {
        assert_eq!(&batch.ids(i), want, "{name}: token ids of pair {i}");
    }

    let raw = PredictOptions {
        activation: Some(sieve::ScoreActivation::Identity),
        ..Default::default()
    };
    let logits = model.predict_with(&pairs, &raw).unwrap();
    assert_close(&format!("{name} logits"), logits.as_slice(), &f32s(&g["logits"]), TOL);
    let scores = model.predict(&pairs).unwrap();
    assert_close(&format!("{name} scores"), &scores, &f32s(&g["predict_default"]), TOL);

    let documents = strs(&g["rank_documents"]);
    let documents: Vec<&str> = documents.iter().map(String::as_str).collect();
    let ranked = model
        .rank(g["rank_query"].as_str().unwrap(), &documents, &RankOptions::default())
        .unwrap();
    let want = g["rank"].as_array().unwrap();
    assert_eq!(
        ranked.iter().map(|h| h.corpus_id as u64).collect::<Vec<_>>(),
        want.iter()
            .map(|w| w["corpus_id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        "{name}: rank order"
    );
    let want_scores: Vec<f32> = want.iter().map(|w| w["score"].as_f64().unwrap() as f32).collect();
    let got_scores: Vec<f32> = ranked.iter().map(|h| h.score).collect();
    assert_close(&format!("{name} rank scores"), &got_scores, &want_scores, TOL);
}

#[test]
fn roberta_cross_encoder_fixture() {
    cross_encoder_case("roberta-ce", &fixture("roberta-ce"));
}

#[test]
fn xlm_roberta_cross_encoder_fixture() {
    cross_encoder_case("xlmr-ce", &fixture("xlmr-ce"));
}

#[test]
fn mpnet_cross_encoder_fixture() {
    cross_encoder_case("mpnet-ce", &repo_fixture("mpnet-ce"));
}

#[test]
fn mpnet_mean_pooling_normalize_fixture() {
    let dir = repo_fixture("mpnet-st-mean-norm");
    let g = read_golden(&dir.join("golden.json"));
    let model = SentenceTransformer::load(&dir).unwrap();
    // Long enough for relative distances past the buckets' max_distance (128).
    assert_eq!(model.max_seq_length() as u64, g["max_seq_length"].as_u64().unwrap());
    let sentences = strs(&g["sentences"]);
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let batch = model.tokenizer().encode(&texts).unwrap();
    let want_ids = unpadded(&g["features"]["input_ids"], &g["features"]["attention_mask"]);
    assert!(
        want_ids.iter().any(|ids| ids.len() > 129),
        "a sequence longer than 128 tokens"
    );
    for (i, want) in want_ids.iter().enumerate() {
        assert_eq!(&batch.ids(i), want, "mpnet: token ids of sentence {i}");
    }
    let embeddings = model.encode(&texts).unwrap();
    assert_close(
        "mpnet-st-mean-norm embeddings",
        embeddings.as_slice(),
        &rows(&g["sentence_embedding"]).concat(),
        TOL,
    );
    let sim = model.similarity(&embeddings, &embeddings).unwrap();
    assert_close(
        "mpnet-st-mean-norm similarity",
        &sim.concat(),
        &rows(&g["similarity"]).concat(),
        TOL,
    );
    // One text at a time (no padding) gives the same vectors as the padded batch.
    let single: Vec<f32> = texts
        .iter()
        .flat_map(|t| model.encode(&[t]).unwrap().as_slice().to_vec())
        .collect();
    assert_close("mpnet-st-mean-norm unbatched", &single, embeddings.as_slice(), TOL);
}

#[test]
fn roberta_splade_fixture_with_tied_decoder() {
    let dir = repo_fixture("roberta-splade");
    let g = read_golden(&dir.join("golden.json"));
    let model = SparseEncoder::load(&dir).unwrap();
    let sentences = strs(&g["sentences"]);
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let batch = model.tokenizer().encode(&texts).unwrap();
    for (i, want) in unpadded(&g["features"]["input_ids"], &g["features"]["attention_mask"])
        .iter()
        .enumerate()
    {
        assert_eq!(&batch.ids(i), want, "roberta-splade: token ids of sentence {i}");
    }
    let emb = model.encode(&texts).unwrap();
    assert_eq!(emb.dim() as u64, g["vocab_size"].as_u64().unwrap());
    for (i, want) in g["sparse_embeddings"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            emb.row(i).indices,
            u32s(&want["indices"]),
            "sentence {i}: active tokens"
        );
        assert_close(
            &format!("roberta-splade sentence {i}"),
            &emb.row(i).values,
            &f32s(&want["values"]),
            SPLADE_TOL,
        );
    }
}

#[test]
fn unknown_architecture_lists_the_supported_ones() {
    let dir = ScratchDir::new("architectures-unknown");
    std::fs::create_dir_all(&dir).unwrap();
    let source = repo_fixture("mpnet-ce");
    for file in ["model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(source.join(file), dir.join(file)).unwrap();
    }
    let config = r#"{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}"#;
    std::fs::write(dir.join("config.json"), config).unwrap();
    let err = CrossEncoder::load(&dir)
        .err()
        .expect("GPT-2 is not supported")
        .to_string();
    assert!(err.contains("GPT2LMHeadModel"), "{err}");
    for supported in sieve::encoders::models::SUPPORTED_ARCHITECTURES {
        assert!(err.contains(supported), "{supported} missing from: {err}");
    }
}
