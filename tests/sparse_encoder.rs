//! SparseEncoder (SPLADE) parity with sentence-transformers 6.2: identical active tokens,
//! weights within 1e-4.

mod common;

use std::sync::OnceLock;

use common::*;
use serde_json::Value;
use sieve::{SparseEncodeOptions, SparseEncoder, SparseVector};

const TOL: f32 = 1e-4;

fn splade_tiny() -> &'static SparseEncoder {
    static MODEL: OnceLock<SparseEncoder> = OnceLock::new();
    MODEL.get_or_init(|| {
        SparseEncoder::from_pretrained("rasyosef/splade-tiny").unwrap_or_else(|e| panic!("{e}\n{}", hub_hint()))
    })
}

fn assert_sparse_eq(what: &str, got: &SparseVector, indices: Vec<u32>, values: Vec<f32>) {
    assert_eq!(got.indices, indices, "{what}: active token set");
    assert_close(what, &got.values, &values, TOL);
}

#[test]
fn splade_tiny_quickstart_matches_sentence_transformers() {
    let g = golden("golden/splade-tiny.json");
    let model = splade_tiny();
    let sentences = strs(&g["sentences"]);
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let batch = model.tokenizer().encode(&texts).unwrap();
    for (i, ids) in g["input_ids"].as_array().unwrap().iter().enumerate() {
        let want: Vec<u32> = u32s(ids).into_iter().filter(|&t| t != 0).collect();
        assert_eq!(batch.ids(i), want, "token ids of sentence {i}");
    }
    let emb = model.encode(&texts).unwrap();
    assert_eq!(emb.shape(), [3, 30522]);
    for (i, s) in g["per_sentence"].as_array().unwrap().iter().enumerate() {
        let nonzero = s["nonzero_sorted"].as_array().unwrap();
        let mut entries: Vec<(u32, f32)> = nonzero
            .iter()
            .map(|e| (e[0].as_u64().unwrap() as u32, e[2].as_f64().unwrap() as f32))
            .collect();
        entries.sort_by_key(|e| e.0);
        assert_sparse_eq(
            &format!("sentence {i}"),
            emb.row(i),
            entries.iter().map(|e| e.0).collect(),
            entries.iter().map(|e| e.1).collect(),
        );
        assert_eq!(emb.row(i).nnz() as u64, s["active_dims"].as_u64().unwrap());
        let top: Vec<(String, f32)> = model.decode(emb.row(i), 10);
        let want: Vec<&str> = s["top10"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t[0].as_str().unwrap())
            .collect();
        assert_eq!(
            top.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(),
            want,
            "top tokens of sentence {i}"
        );
    }
    let sim = model.similarity(&emb, &emb);
    // Dot products of ~40 carry float32 rounding of ~1e-5 whatever the order of summation.
    assert_close("dot similarity", &sim.concat(), &rows(&g["similarity"]).concat(), 1e-4);
    let stats = model.sparsity(&emb);
    assert!(stats.sparsity_ratio > 0.99, "{stats:?}");
}

#[test]
fn splade_tiny_long_documents() {
    let g = golden("golden/splade-tiny.long-docs.json");
    let model = splade_tiny();
    assert_eq!(model.max_seq_length(), 512);
    let texts = strs(&g["texts"]);
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let emb = model.encode(&texts).unwrap();
    for (i, want) in g["sparse"].as_array().unwrap().iter().enumerate() {
        assert_sparse_eq(
            &format!("long doc {i}"),
            emb.row(i),
            u32s(&want["indices"]),
            f32s(&want["values"]),
        );
    }
}

#[test]
fn bert_splade_fixture_with_tied_decoder() {
    let g = golden("fixtures/bert-splade/golden.json");
    let model = SparseEncoder::load(fixture("bert-splade")).unwrap();
    let sentences = strs(&g["sentences"]);
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let emb = model.encode(&texts).unwrap();
    assert_eq!(emb.dim() as u64, g["vocab_size"].as_u64().unwrap());
    for (i, want) in g["sparse_embeddings"].as_array().unwrap().iter().enumerate() {
        assert_sparse_eq(
            &format!("fixture sentence {i}"),
            emb.row(i),
            u32s(&want["indices"]),
            f32s(&want["values"]),
        );
    }
    let sim = model.similarity(&emb, &emb);
    assert_close(
        "fixture similarity",
        &sim.concat(),
        &rows(&g["similarity"]).concat(),
        1e-4,
    );
    for (i, want) in g["decode_top5"].as_array().unwrap().iter().enumerate() {
        let got = model.decode(emb.row(i), 5);
        let want: Vec<&str> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|t: &Value| t[0].as_str().unwrap())
            .collect();
        assert_eq!(got.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(), want);
    }
}

#[test]
fn max_active_dims_keeps_the_heaviest() {
    let model = splade_tiny();
    let text = ["The weather is lovely today."];
    let full = model.encode(&text).unwrap();
    let top = model
        .encode_with(
            &text,
            &SparseEncodeOptions {
                max_active_dims: Some(5),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(top.row(0).nnz(), 5);
    let mut heaviest: Vec<f32> = full.row(0).values.clone();
    heaviest.sort_by(|a, b| b.total_cmp(a));
    let mut kept = top.row(0).values.clone();
    kept.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(kept, heaviest[..5]);
}

#[test]
fn a_literal_prompt_is_prepended_and_wins_over_prompt_name() {
    let model = splade_tiny();
    let prompted = model
        .encode_with(
            &["lovely today."],
            &SparseEncodeOptions {
                prompt: Some("The weather is ".into()),
                prompt_name: Some("no-such-prompt".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let plain = model.encode(&["The weather is lovely today."]).unwrap();
    assert_eq!(prompted.row(0).indices, plain.row(0).indices);
    assert_close("prompted", &prompted.row(0).values, &plain.row(0).values, 1e-6);
}
