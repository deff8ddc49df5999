//! Checkpoints stored in f16 or bf16 load as f32 and give the f32 model's outputs to within the
//! rounding of the stored weights.

mod common;

use common::{ScratchDir, fixture, max_abs_diff};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use sieve::SentenceTransformer;

/// A copy of the `bert-st-mean-norm` fixture with its weights re-encoded by `convert`.
fn converted_fixture(tag: &str, dtype: Dtype, convert: fn(f32) -> [u8; 2]) -> ScratchDir {
    let dir = ScratchDir::new(&format!("half-{tag}"));
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    let src = fixture("bert-st-mean-norm");
    for file in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "1_Pooling/config.json",
    ] {
        std::fs::copy(src.join(file), dir.join(file)).unwrap();
    }
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let converted: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let data: Vec<u8> = view
                .data()
                .chunks_exact(4)
                .flat_map(|b| convert(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect();
            (name, data, view.shape().to_vec())
        })
        .collect();
    let views: Vec<(String, TensorView)> = converted
        .iter()
        .map(|(name, data, shape)| (name.clone(), TensorView::new(dtype, shape.clone(), data).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    dir
}

fn check(tag: &str, dtype: Dtype, convert: fn(f32) -> [u8; 2], tol: f32) {
    let texts = ["The weather is lovely today.", "He drove to the stadium."];
    let reference = SentenceTransformer::load(fixture("bert-st-mean-norm"))
        .unwrap()
        .encode(&texts)
        .unwrap();
    let dir = converted_fixture(tag, dtype, convert);
    let half = SentenceTransformer::load(&dir).unwrap().encode(&texts).unwrap();
    let diff = max_abs_diff(half.as_slice(), reference.as_slice());
    eprintln!("{tag}: max |diff| vs f32 = {diff:e}");
    assert!(diff > 0.0, "{tag}: weights were not actually re-encoded");
    assert!(diff < tol, "{tag}: max |diff| {diff} >= {tol}");
}

#[test]
fn f16_weights_load_as_f32() {
    // f16 keeps 11 significant bits: unit-norm outputs move by ~1e-3 at most.
    check("f16", Dtype::F16, |x| half::f16::from_f32(x).to_le_bytes(), 1e-2);
}

#[test]
fn bf16_weights_load_as_f32() {
    // bf16 keeps 8 significant bits.
    check("bf16", Dtype::BF16, |x| half::bf16::from_f32(x).to_le_bytes(), 5e-2);
}
