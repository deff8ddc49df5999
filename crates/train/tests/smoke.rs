//! A few training steps per model kind on the tiny fixtures: the loss goes down, and the saved
//! folder reloads in the inference encoders with the trained model's outputs.

mod common;

use std::path::PathBuf;

use sieve_encoders::training::{ModelKind, TrainableModel};
use sieve_encoders::{CrossEncoder, SentenceTransformer, SparseEncoder};
use sieve_train::losses::{CrossLoss, DenseLoss, SpladeLoss};
use sieve_train::trainer::{Example, Objective, Trainer, TrainingArgs};

const TEXTS: [(&str, &str); 6] = [
    ("The weather is lovely today.", "It's so sunny outside!"),
    ("He drove to the stadium.", "A man is driving a car."),
    ("A man is eating food.", "A man is eating a piece of bread."),
    (
        "A monkey is playing drums.",
        "Someone in a gorilla costume is playing a set of drums.",
    ),
    ("The new movie is awesome.", "The new movie is so great."),
    ("A woman is playing violin.", "A woman plays the violin on stage."),
];

fn out_dir(name: &str) -> common::ScratchDir {
    common::ScratchDir::new(&format!("train-smoke-{name}"))
}

fn args() -> TrainingArgs {
    TrainingArgs {
        epochs: 4,
        batch_size: 3,
        lr: 2e-3,
        warmup_ratio: 0.0,
        ..TrainingArgs::default()
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn host(t: burn::tensor::Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn a_bi_encoder_learns_and_its_folder_reloads() {
    let Some(dir) = common::fixture("bert-st-mean-norm") else {
        return;
    };
    let mut model = TrainableModel::from_pretrained(ModelKind::SentenceTransformer, dir.to_str().unwrap()).unwrap();
    let examples: Vec<Example> = TEXTS.iter().map(|(a, p)| Example::pair(a, p)).collect();
    let mut epochs_seen = Vec::new();
    let report = Trainer::new(Objective::Dense(DenseLoss::default()), args())
        .fit(&mut model, &examples, |_, _, epoch| {
            epochs_seen.push(epoch);
            Ok(())
        })
        .unwrap();
    assert_eq!(epochs_seen, [1, 2, 3, 4]);
    assert_eq!(report.steps, 8);
    let (first, last) = (report.epoch_losses[0], *report.epoch_losses.last().unwrap());
    assert!(
        last < first * 0.9,
        "the loss did not go down: {:?}",
        report.epoch_losses
    );

    let out = out_dir("dense");
    model.save(&out).unwrap();
    for file in [
        "modules.json",
        "1_Pooling/config.json",
        "tokenizer.json",
        "config.json",
        "model.safetensors",
    ] {
        assert!(out.join(file).is_file(), "{file} missing from the saved folder");
    }
    let texts: Vec<&str> = TEXTS.iter().map(|(a, _)| *a).collect();
    let trained = host(model.embed(&texts).unwrap());
    let reloaded = SentenceTransformer::load(&out).unwrap().encode(&texts).unwrap();
    let base = SentenceTransformer::load(&dir).unwrap().encode(&texts).unwrap();
    assert!(max_diff(&trained, reloaded.as_slice()) < 1e-5);
    assert!(max_diff(&trained, base.as_slice()) > 1e-3, "training changed nothing");
}

#[test]
fn a_reranker_learns_and_its_folder_reloads() {
    let Some(dir) = common::fixture("roberta-ce") else {
        return;
    };
    let mut model = TrainableModel::from_pretrained(ModelKind::CrossEncoder, dir.to_str().unwrap()).unwrap();
    // Each query with its own answer (1) and the next query's (0).
    let examples: Vec<Example> = (0..TEXTS.len())
        .map(|i| {
            let (q, p) = TEXTS[i];
            Example::with_negatives(q, p, &[TEXTS[(i + 1) % TEXTS.len()].1])
        })
        .collect();
    let sampled = CrossLoss::MultipleNegativesRanking {
        num_negatives: Some(2),
        scale: 10.0,
        activation: sieve_encoders::ScoreActivation::Sigmoid,
    };
    // Four losses one after another on six examples: the later ones start near their minimum,
    // where dropout's noise outweighs an epoch's progress, so this test trains without it.
    let exact = TrainingArgs {
        dropout: false,
        ..args()
    };
    for loss in [CrossLoss::default(), CrossLoss::ListNet, sampled, CrossLoss::SOFTMAX] {
        let report = Trainer::new(Objective::Cross(loss), exact.clone())
            .fit(&mut model, &examples, |_, _, _| Ok(()))
            .unwrap();
        let (first, last) = (report.epoch_losses[0], *report.epoch_losses.last().unwrap());
        assert!(
            last < first,
            "{}: the loss did not go down: {:?}",
            loss.name(),
            report.epoch_losses
        );
    }
    // The softmax over hard negatives alone has nothing to rank for a query without one.
    let pairs_only: Vec<Example> = TEXTS.iter().map(|(q, p)| Example::pair(q, p)).collect();
    let err = Trainer::new(Objective::Cross(CrossLoss::SOFTMAX), args())
        .fit(&mut model, &pairs_only, |_, _, _| Ok(()))
        .unwrap_err();
    assert!(err.to_string().contains("needs a negative per query"), "{err}");
    let out = out_dir("cross");
    model.save(&out).unwrap();
    let pairs: Vec<(&str, &str)> = TEXTS.to_vec();
    let trained = host(model.logits(&pairs).unwrap());
    let reloaded = CrossEncoder::load(&out).unwrap();
    let scores = reloaded
        .predict_with(
            &pairs,
            &sieve_encoders::PredictOptions {
                activation: Some(sieve_encoders::ScoreActivation::Identity),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(max_diff(&trained, scores.as_slice()) < 1e-5);
}

#[test]
fn splade_learns_and_its_folder_reloads() {
    let Some(dir) = common::fixture("bert-splade") else {
        return;
    };
    let mut model = TrainableModel::from_pretrained(ModelKind::SparseEncoder, dir.to_str().unwrap()).unwrap();
    let examples: Vec<Example> = TEXTS.iter().map(|(a, p)| Example::pair(a, p)).collect();
    let report = Trainer::new(Objective::Sparse(SpladeLoss::default()), args())
        .fit(&mut model, &examples, |_, _, _| Ok(()))
        .unwrap();
    let (first, last) = (report.epoch_losses[0], *report.epoch_losses.last().unwrap());
    assert!(last < first, "the loss did not go down: {:?}", report.epoch_losses);
    let out = out_dir("sparse");
    model.save(&out).unwrap();
    let texts: Vec<&str> = TEXTS.iter().map(|(a, _)| *a).collect();
    let trained = host(model.sparse(&texts).unwrap());
    let reloaded = SparseEncoder::load(&out).unwrap().encode(&texts).unwrap();
    let vocab = trained.len() / texts.len();
    let dense: Vec<f32> = reloaded.rows().iter().flat_map(|v| v.to_dense(vocab)).collect();
    assert!(max_diff(&trained, &dense) < 1e-4);
}

#[test]
fn a_loss_for_another_model_kind_is_refused() {
    let Some(dir) = common::fixture("bert-st-mean-norm") else {
        return;
    };
    let mut model = TrainableModel::from_pretrained(ModelKind::SentenceTransformer, dir.to_str().unwrap()).unwrap();
    let examples = vec![Example::pair("a", "b")];
    let err = Trainer::new(Objective::Cross(CrossLoss::default()), args())
        .fit(&mut model, &examples, |_, _, _| Ok(()))
        .unwrap_err();
    assert!(err.to_string().contains("CrossEncoder"), "{err}");
    let err = model.logits(&[("a", "b")]).unwrap_err();
    assert!(err.to_string().contains("logits()"), "{err}");
}

/// all-MiniLM-L6-v2 stores an int64 buffer (`embeddings.position_ids`) beside its weights: a
/// save copies it as it is, and the saved folder encodes exactly as the original.
#[test]
fn saving_all_minilm_keeps_its_integer_buffer_and_outputs() {
    let model = match TrainableModel::from_pretrained(ModelKind::SentenceTransformer, "all-MiniLM-L6-v2") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipped: all-MiniLM-L6-v2 is not in the Hugging Face cache (run scripts/fetch-models): {e}");
            return;
        }
    };
    let out = out_dir("minilm");
    model.save(&out).unwrap();
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let saved = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(
        saved.tensor("embeddings.position_ids").unwrap().dtype(),
        safetensors::Dtype::I64
    );
    let texts = ["The weather is lovely today.", "It's so sunny outside!"];
    let before = SentenceTransformer::from_pretrained("all-MiniLM-L6-v2")
        .unwrap()
        .encode(&texts)
        .unwrap();
    let after = SentenceTransformer::load(&out).unwrap().encode(&texts).unwrap();
    assert!(max_diff(before.as_slice(), after.as_slice()) < 1e-6);
}

fn flat_values(model: &TrainableModel) -> Vec<f32> {
    model
        .parameters()
        .iter()
        .flat_map(|p| p.flat().into_data().try_to_vec::<f32>().unwrap())
        .collect()
}

/// A run stopped after epoch 1 and resumed from its checkpoint (weights + optimizer state) ends
/// where an uninterrupted run ends; without the optimizer state it does not.
#[test]
fn a_resumed_run_continues_as_if_it_had_not_stopped() {
    let Some(dir) = common::fixture("bert-st-mean-norm") else {
        return;
    };
    let load = |path: &std::path::Path| {
        TrainableModel::from_pretrained(ModelKind::SentenceTransformer, path.to_str().unwrap()).unwrap()
    };
    let examples: Vec<Example> = TEXTS.iter().map(|(a, p)| Example::pair(a, p)).collect();
    let args = TrainingArgs {
        epochs: 2,
        warmup_ratio: 0.3,
        ..args()
    };
    let trainer = Trainer::new(Objective::Dense(DenseLoss::default()), args.clone());

    let mut straight = load(&dir);
    trainer.fit(&mut straight, &examples, |_, _, _| Ok(())).unwrap();

    // Stopped by its hook after saving epoch 1, as a killed `sieve train` leaves it.
    let out = out_dir("resume");
    let checkpoint = out.join("checkpoint-1");
    let state = checkpoint.join("optimizer.safetensors");
    let mut stopped = load(&dir);
    let err = trainer
        .fit(&mut stopped, &examples, |model, optimizer, epoch| {
            model.save(&checkpoint)?;
            optimizer.save_state(model, &state)?;
            Err(sieve_train::TrainError::InvalidOption(format!(
                "stopped after epoch {epoch}"
            )))
        })
        .unwrap_err();
    assert!(err.to_string().contains("stopped after epoch 1"), "{err}");

    let resume = |optimizer_state: Option<PathBuf>| {
        let mut model = load(&checkpoint);
        let args = TrainingArgs {
            start_epoch: 1,
            optimizer_state,
            ..args.clone()
        };
        let report = Trainer::new(Objective::Dense(DenseLoss::default()), args)
            .fit(&mut model, &examples, |_, _, _| Ok(()))
            .unwrap();
        assert_eq!(report.steps, 4);
        flat_values(&model)
    };
    let expected = flat_values(&straight);
    let resumed = resume(Some(state.clone()));
    assert!(
        max_diff(&expected, &resumed) < 1e-6,
        "resumed with its optimizer state, the run ended {} away from the uninterrupted one",
        max_diff(&expected, &resumed)
    );
    let fresh = resume(None);
    assert!(
        max_diff(&expected, &fresh) > 1e-4,
        "without the optimizer state the run should differ (the moments start afresh)"
    );

    // A save from the checkpoint leaves the run's files (optimizer state, checkpoint folders) out.
    std::fs::create_dir_all(checkpoint.join("checkpoint-7")).unwrap();
    let copy = out.join("copy");
    load(&checkpoint).save(&copy).unwrap();
    assert!(copy.join("model.safetensors").is_file());
    assert!(!copy.join("optimizer.safetensors").exists() && !copy.join("checkpoint-7").exists());

    // The state of another run's schedule, or of another model, is refused with a clear error.
    let mut model = load(&checkpoint);
    let longer = TrainingArgs {
        start_epoch: 1,
        batch_size: 2,
        optimizer_state: Some(state.clone()),
        ..args.clone()
    };
    let err = Trainer::new(Objective::Dense(DenseLoss::default()), longer)
        .fit(&mut model, &examples, |_, _, _| Ok(()))
        .unwrap_err();
    assert!(err.to_string().contains("2 steps in"), "{err}");
    if let Some(other) = common::fixture("distilbert-st-cls") {
        let other = load(&other);
        let mut optimizer = sieve_train::optim::AdamW::new(Default::default(), &other);
        let err = optimizer.load_state(&other, &state).unwrap_err();
        assert!(err.to_string().contains("is not a parameter of this model"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn dropout_is_off_until_asked_for_and_follows_its_seed() {
    let Some(dir) = common::fixture("roberta-ce") else {
        return;
    };
    let mut model = TrainableModel::from_pretrained(ModelKind::CrossEncoder, dir.to_str().unwrap()).unwrap();
    assert!(model.has_dropout(), "the fixture's config sets dropout rates of 0.1");
    let pairs: Vec<(&str, &str)> = TEXTS.to_vec();
    let exact = host(model.logits(&pairs).unwrap());
    assert_eq!(
        host(model.logits(&pairs).unwrap()),
        exact,
        "without dropout a pass is deterministic"
    );
    model.set_dropout(Some(1));
    let noisy = host(model.logits(&pairs).unwrap());
    assert!(max_diff(&noisy, &exact) > 1e-4, "dropout changed nothing");
    model.set_dropout(Some(1));
    assert_eq!(
        host(model.logits(&pairs).unwrap()),
        noisy,
        "the same seed drops the same elements"
    );
    model.set_dropout(Some(2));
    assert!(
        max_diff(&host(model.logits(&pairs).unwrap()), &noisy) > 1e-4,
        "another seed, other masks"
    );
    model.set_dropout(None);
    assert_eq!(host(model.logits(&pairs).unwrap()), exact);
}

#[test]
fn frozen_parameters_keep_their_values() {
    let Some(dir) = common::fixture("bert-st-mean-norm") else {
        return;
    };
    let mut model = TrainableModel::from_pretrained(ModelKind::SentenceTransformer, dir.to_str().unwrap()).unwrap();
    let values = |model: &TrainableModel| -> Vec<(String, Vec<f32>)> {
        model
            .parameters()
            .iter()
            .map(|p| (p.name().to_string(), p.flat().into_data().iter::<f32>().collect()))
            .collect()
    };
    let before = values(&model);
    let examples: Vec<Example> = TEXTS.iter().map(|(a, p)| Example::pair(a, p)).collect();
    let args = TrainingArgs {
        epochs: 1,
        freeze: vec!["word_embeddings".into(), "layer.0.".into()],
        ..args()
    };
    Trainer::new(Objective::Dense(DenseLoss::default()), args.clone())
        .fit(&mut model, &examples, |_, _, _| Ok(()))
        .unwrap();
    let frozen = |name: &str| name.contains("word_embeddings") || name.contains("layer.0.");
    for ((name, old), (_, new)) in before.iter().zip(values(&model)) {
        match frozen(name) {
            true => assert_eq!(old, &new, "{name} is frozen but changed"),
            false => assert!(max_diff(old, &new) > 0.0, "{name} did not train"),
        }
    }
    assert!(before.iter().filter(|(name, _)| frozen(name)).count() > 1);
    let unknown = TrainingArgs {
        freeze: vec!["no_such_parameter".into()],
        ..args
    };
    let err = Trainer::new(Objective::Dense(DenseLoss::default()), unknown)
        .fit(&mut model, &examples, |_, _, _| Ok(()))
        .unwrap_err();
    assert!(err.to_string().contains("no_such_parameter"), "{err}");
}

/// A model trained at another length than its folder's saves that length where
/// sentence-transformers and the encoders read it (`sentence_bert_config.json` for a bi-encoder,
/// `tokenizer_config.json` for a reranker); a model kept at its length saves the configs as they
/// were.
#[test]
fn the_saved_folder_keeps_the_trained_max_seq_length() {
    let (Some(dense), Some(cross)) = (common::fixture("bert-st-mean-norm"), common::fixture("roberta-ce")) else {
        return;
    };
    let mut model = TrainableModel::from_pretrained(ModelKind::SentenceTransformer, dense.to_str().unwrap()).unwrap();
    let kept = out_dir("length-kept");
    model.save(&kept).unwrap();
    for file in ["sentence_bert_config.json", "tokenizer_config.json"] {
        assert_eq!(
            std::fs::read(kept.join(file)).unwrap(),
            std::fs::read(dense.join(file)).unwrap(),
            "{file} changed though the length did not"
        );
    }
    let before = SentenceTransformer::load(&dense).unwrap().max_seq_length();
    model.set_max_seq_length(before / 2).unwrap();
    let out = out_dir("length-dense");
    model.save(&out).unwrap();
    assert_eq!(SentenceTransformer::load(&out).unwrap().max_seq_length(), before / 2);

    let mut model = TrainableModel::from_pretrained(ModelKind::CrossEncoder, cross.to_str().unwrap()).unwrap();
    let before = CrossEncoder::load(&cross).unwrap().max_length();
    model.set_max_seq_length(before / 4).unwrap();
    let out = out_dir("length-cross");
    model.save(&out).unwrap();
    assert_eq!(CrossEncoder::load(&out).unwrap().max_length(), before / 4);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tokenizer_config.json")).unwrap()).unwrap();
    assert_eq!(config["model_max_length"], before / 4);
}
