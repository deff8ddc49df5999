//! Gradient parity with sentence-transformers 6.2 / PyTorch: for every loss, on the tiny
//! fixtures in `../shared/fixtures/`, the loss value and the gradients of named parameters after
//! one backward pass, and the weights after three AdamW steps with warmup and clipping, against
//! `tests/golden/train_golden.json` (made by `tests/golden/generate.py`).

mod common;

use std::path::Path;

use burn::tensor::Tensor;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use sieve_encoders::ScoreActivation;
use sieve_encoders::training::{ModelKind, Parameter, TrainableModel};
use sieve_train::losses::{CrossLoss, DenseLoss, SpladeLoss};
use sieve_train::optim::{AdamW, AdamWConfig};
use sieve_train::trainer::{Example, Objective};

fn golden() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/train_golden.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn kind_of(fixture: &str) -> ModelKind {
    match fixture {
        f if f.ends_with("-ce") => ModelKind::CrossEncoder,
        f if f.ends_with("splade") => ModelKind::SparseEncoder,
        _ => ModelKind::SentenceTransformer,
    }
}

fn texts(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect()
}

/// This case's loss on the batch the generator wrote beside its values.
fn loss(model: &TrainableModel, case: &Value) -> Tensor<1> {
    let columns: Vec<Vec<&str>> = case["columns"].as_array().unwrap().iter().map(texts).collect();
    let labels = case.get("labels").map(floats);
    let embedded = || -> Vec<Tensor<2>> { columns.iter().map(|c| model.embed(c).unwrap()).collect() };
    let pairs = || -> Vec<(&str, &str)> { columns[0].iter().copied().zip(columns[1].iter().copied()).collect() };
    match case["loss"].as_str().unwrap() {
        "MultipleNegativesRankingLoss" | "MultipleNegativesRankingLoss(pairs)" => {
            DenseLoss::default().compute(&embedded(), None)
        }
        "CoSENTLoss" => DenseLoss::CoSent { scale: 20.0 }.compute(&embedded(), labels.as_deref()),
        "CosineSimilarityLoss" => DenseLoss::CosineSimilarity.compute(&embedded(), labels.as_deref()),
        "MatryoshkaLoss(MultipleNegativesRankingLoss)" => DenseLoss::Matryoshka {
            inner: Box::new(DenseLoss::default()),
            dims: case["dims"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect(),
            weights: floats(&case["weights"]),
        }
        .compute(&embedded(), None),
        "BinaryCrossEntropyLoss" => {
            let labels = labels.unwrap();
            CrossLoss::default().compute(model.logits(&pairs()).unwrap(), &labels, &vec![1; labels.len()])
        }
        "ListNetLoss" => {
            let groups: Vec<usize> = case["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g.as_u64().unwrap() as usize)
                .collect();
            CrossLoss::ListNet.compute(model.logits(&pairs()).unwrap(), &labels.unwrap(), &groups)
        }
        name @ ("CrossEncoder MultipleNegativesRankingLoss(num_negatives=None)"
        | "CrossEncoder MultipleNegativesRankingLoss(num_negatives=None, scale=1, Identity)") => {
            // Through the trainer's objective, which adds the in-batch negatives.
            let (scale, activation) = if name.ends_with("Identity)") {
                (1.0, ScoreActivation::Identity)
            } else {
                (10.0, ScoreActivation::Sigmoid)
            };
            let loss = CrossLoss::MultipleNegativesRanking {
                num_negatives: None,
                scale,
                activation,
            };
            let examples: Vec<Example> = (0..columns[0].len())
                .map(|i| Example::with_negatives(columns[0][i], columns[1][i], &[columns[2][i]]))
                .collect();
            let batch: Vec<&Example> = examples.iter().collect();
            Objective::Cross(loss).loss(model, &batch, &mut StdRng::seed_from_u64(0))
        }
        "SpladeLoss" => {
            let weights = floats(&case["regularizer_weights"]);
            let loss = SpladeLoss {
                document_regularizer_weight: weights[0],
                query_regularizer_weight: Some(weights[1]),
                scale: 1.0,
            };
            let columns: Vec<Tensor<2>> = columns.iter().map(|c| model.sparse(c).unwrap()).collect();
            loss.compute(&columns).map(|(total, _)| total)
        }
        other => panic!("no loss named {other}"),
    }
    .unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Largest difference relative to the largest golden magnitude (at least 1e-3: a gradient that
/// is zero up to rounding, like a softmax-invariant bias's, is compared absolutely).
fn relative(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
    got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

fn parameter<'a>(parameters: &'a [Parameter], name: &str) -> &'a Parameter {
    parameters
        .iter()
        .find(|p| p.name() == name)
        .unwrap_or_else(|| panic!("no parameter {name}"))
}

#[test]
fn losses_and_gradients_match_sentence_transformers() {
    let Some(fixtures) = common::fixtures() else { return };
    let golden = golden();
    let mut report = Vec::new();
    for case in golden["cases"].as_array().unwrap() {
        let fixture = case["fixture"].as_str().unwrap();
        let name = case["loss"].as_str().unwrap();
        let model =
            TrainableModel::from_pretrained(kind_of(fixture), fixtures.join(fixture).to_str().unwrap()).unwrap();
        let value = loss(&model, case);
        let got: f32 = value.clone().into_scalar();
        let want = case["value"].as_f64().unwrap() as f32;
        let loss_diff = (got - want).abs() / want.abs().max(1e-12);
        assert!(loss_diff < 1e-4, "{fixture} {name}: loss {got} vs {want}");
        let grads = value.backward();
        let parameters = model.parameters();
        let mut worst = 0f32;
        for (key, want) in case["grads"].as_object().unwrap() {
            let p = parameter(&parameters, key);
            let grad = p
                .grad(&grads)
                .unwrap_or_else(|| panic!("{name}: no gradient for {key}"));
            let grad = p.to_checkpoint_layout(grad).unwrap();
            let diff = if let Some(rows) = want.get("rows") {
                let width = p.shape()[1];
                let got: Vec<f32> = rows
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|r| {
                        let r = r.as_u64().unwrap() as usize;
                        grad[r * width..(r + 1) * width].to_vec()
                    })
                    .collect();
                relative(&got, &floats(&want["values"]))
            } else {
                relative(&grad, &floats(want))
            };
            assert!(
                diff < 1e-4,
                "{fixture} {name}: gradient of {key} differs by {diff:e} (relative)"
            );
            worst = worst.max(diff);
        }
        report.push(format!(
            "{fixture:18} {name:46} loss {loss_diff:.1e}  gradients {worst:.1e}"
        ));
    }
    eprintln!("relative differences against PyTorch:\n{}", report.join("\n"));
}

#[test]
fn three_adamw_steps_with_warmup_match_pytorch() {
    let Some(fixtures) = common::fixtures() else { return };
    let golden = golden();
    for case in golden["cases"].as_array().unwrap() {
        let Some(adamw) = case.get("adamw") else { continue };
        let fixture = case["fixture"].as_str().unwrap();
        let name = case["loss"].as_str().unwrap();
        let mut model =
            TrainableModel::from_pretrained(kind_of(fixture), fixtures.join(fixture).to_str().unwrap()).unwrap();
        let config = AdamWConfig {
            lr: adamw["lr"].as_f64().unwrap(),
            weight_decay: adamw["weight_decay"].as_f64().unwrap(),
            warmup_steps: adamw["warmup_steps"].as_u64().unwrap() as usize,
            total_steps: adamw["total_steps"].as_u64().unwrap() as usize,
            max_grad_norm: Some(adamw["max_grad_norm"].as_f64().unwrap()),
            ..AdamWConfig::default()
        };
        let mut optimizer = AdamW::new(config, &model);
        let losses = floats(&adamw["losses"]);
        for want in &losses {
            let value = loss(&model, case);
            let got: f32 = value.clone().into_scalar();
            assert!(
                (got - want).abs() < 1e-4 * want.abs().max(1.0),
                "{name}: loss {got} vs {want}"
            );
            optimizer.accumulate(&model, &value.backward(), 1.0).unwrap();
            optimizer.step(&mut model).unwrap();
        }
        let parameters = model.parameters();
        let mut worst = 0f32;
        for (key, want) in adamw["weights"].as_object().unwrap() {
            if key.starts_with("pooler.") {
                // BertModel's pooler: no sentence-transformers loss reaches it, so neither
                // optimizer touches it (sieve does not even load it for a bi-encoder).
                continue;
            }
            let p = parameter(&parameters, key);
            let got = p.to_checkpoint_layout(p.flat()).unwrap();
            let diff = got
                .iter()
                .zip(floats(want))
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff < 1e-5, "{fixture} {name}: {key} after 3 steps differs by {diff:e}");
            worst = worst.max(diff);
        }
        eprintln!("{fixture} {name}: weights after 3 AdamW steps within {worst:.1e}");
    }
}
