//! Parity on burn's wgpu backend: the golden values of `../shared` reproduced with every model
//! loaded on `Device::Wgpu` (on a machine without a GPU, Mesa's lavapipe Vulkan driver).
//!
//! This is the only place the non-CPU paths run (burn's GELU, the tensor-op SPLADE pooling), so
//! it compares outputs rather than trusting the CPU suite. f32 holds 1e-4 here rather than the
//! CPU's 1e-5: GPU kernels sum in other orders (tiled matmuls, tree reductions), which moves the
//! last bits of a 384-wide dot product.
//!
//! Without an adapter the tests fail, naming the reason; `SIEVE_SKIP_WGPU=1` turns that into a
//! printed skip (for machines that build the feature but cannot run it).
#![cfg(feature = "wgpu")]

mod common;

use std::sync::OnceLock;

use common::*;
use sieve::engine::{Collection, Document, Retriever};
use sieve::{
    CrossEncoder, Device, Dtype, EncoderError, LoadOptions, ModelFiles, PredictOptions, ScoreActivation,
    SentenceTransformer, SparseEncoder,
};

const TOL: f32 = 1e-4;
const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";

fn options(dtype: Dtype) -> LoadOptions {
    LoadOptions {
        device: Device::Wgpu,
        dtype,
    }
}

/// `true` when a wgpu adapter works; without one, fails the test unless `SIEVE_SKIP_WGPU=1`.
fn adapter() -> bool {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    let probe = PROBE.get_or_init(|| {
        let files = ModelFiles::local(fixture("bert-st-mean-norm")).unwrap();
        match SentenceTransformer::from_files(&files, &options(Dtype::F32)) {
            Ok(_) => Ok(()),
            Err(e @ EncoderError::DeviceUnavailable { .. }) => Err(e.to_string()),
            Err(e) => panic!("loading a fixture on wgpu failed for another reason: {e}"),
        }
    });
    match probe {
        Ok(()) => true,
        Err(reason) if std::env::var("SIEVE_SKIP_WGPU").as_deref() == Ok("1") => {
            eprintln!("skipped (SIEVE_SKIP_WGPU=1): {reason}");
            false
        }
        Err(reason) => panic!(
            "no usable wgpu adapter: {reason}\n\
             install a Vulkan driver (on a machine without a GPU: Mesa's lavapipe, Debian package \
             mesa-vulkan-drivers), or set SIEVE_SKIP_WGPU=1 to skip these tests"
        ),
    }
}

fn minilm(dtype: Dtype) -> SentenceTransformer {
    SentenceTransformer::from_pretrained_with(MINILM, &options(dtype)).unwrap_or_else(|e| panic!("{e}\n{}", hub_hint()))
}

fn quickstart() -> (serde_json::Value, Vec<String>) {
    let g = golden("golden/all-MiniLM-L6-v2.json");
    let sentences = strs(&g["sentences"]);
    (g, sentences)
}

#[test]
fn minilm_quickstart_embeddings() {
    if !adapter() {
        return;
    }
    let (g, sentences) = quickstart();
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let model = minilm(Dtype::F32);
    let embeddings = model.encode(&texts).unwrap();
    assert_close(
        "wgpu minilm embeddings",
        embeddings.as_slice(),
        &rows(&g["embeddings"]).concat(),
        TOL,
    );
    let sim = model.similarity(&embeddings, &embeddings).unwrap();
    assert_close(
        "wgpu minilm similarity",
        &sim.concat(),
        &rows(&g["similarity"]).concat(),
        TOL,
    );
}

#[test]
fn stsb_cross_encoder_scores() {
    if !adapter() {
        return;
    }
    let g = golden("golden/stsb-minilm-l6-ce.json");
    let model = CrossEncoder::from_pretrained_with("sieve/stsb-minilm-l6-ce", &options(Dtype::F32))
        .unwrap_or_else(|e| panic!("{e}\n{}", hub_hint()));
    let query = g["query"].as_str().unwrap();
    let corpus = strs(&g["corpus"]);
    let pairs: Vec<(&str, &str)> = corpus.iter().map(|d| (query, d.as_str())).collect();
    let scores = model.predict(&pairs).unwrap();
    assert_close("wgpu stsb sigmoid scores", &scores, &f32s(&g["scores_sigmoid"]), TOL);
    let raw = PredictOptions {
        activation: Some(ScoreActivation::Identity),
        ..Default::default()
    };
    let logits = model.predict_with(&pairs, &raw).unwrap();
    assert_close("wgpu stsb logits", logits.as_slice(), &f32s(&g["logits"]), TOL);
}

#[test]
fn splade_tiny_sparse_weights() {
    if !adapter() {
        return;
    }
    let g = golden("golden/splade-tiny.json");
    let model = SparseEncoder::from_pretrained_with("rasyosef/splade-tiny", &options(Dtype::F32))
        .unwrap_or_else(|e| panic!("{e}\n{}", hub_hint()));
    let sentences = strs(&g["sentences"]);
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let emb = model.encode(&texts).unwrap();
    let mut worst = 0.0f32;
    for (i, s) in g["per_sentence"].as_array().unwrap().iter().enumerate() {
        let mut entries: Vec<(u32, f32)> = s["nonzero_sorted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e[0].as_u64().unwrap() as u32, e[2].as_f64().unwrap() as f32))
            .collect();
        entries.sort_by_key(|e| e.0);
        let row = emb.row(i);
        assert_eq!(
            row.indices,
            entries.iter().map(|e| e.0).collect::<Vec<_>>(),
            "sentence {i}: active token set"
        );
        let want: Vec<f32> = entries.iter().map(|e| e.1).collect();
        worst = worst.max(max_abs_diff(&row.values, &want));
    }
    assert!(
        worst <= TOL,
        "wgpu splade-tiny weights: max |diff| = {worst:e} > {TOL:e}"
    );
    eprintln!("wgpu splade-tiny weights: max |diff| = {worst:e} (identical active sets)");
}

#[test]
fn roberta_cross_encoder_fixture() {
    if !adapter() {
        return;
    }
    let g = read_golden(&fixture("roberta-ce").join("golden.json"));
    let files = ModelFiles::local(fixture("roberta-ce")).unwrap();
    let model = CrossEncoder::from_files(&files, &options(Dtype::F32)).unwrap();
    let owned = pairs(&g["pairs"]);
    let pairs: Vec<(&str, &str)> = owned.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let raw = PredictOptions {
        activation: Some(ScoreActivation::Identity),
        ..Default::default()
    };
    let logits = model.predict_with(&pairs, &raw).unwrap();
    assert_close("wgpu roberta-ce logits", logits.as_slice(), &f32s(&g["logits"]), TOL);
}

#[test]
fn mpnet_fixture_embeddings() {
    if !adapter() {
        return;
    }
    // MPNet adds a relative-position bias to the attention scores: the other attention path.
    let dir = repo_fixture("mpnet-st-mean-norm");
    let g = read_golden(&dir.join("golden.json"));
    let model = SentenceTransformer::from_files(&ModelFiles::local(&dir).unwrap(), &options(Dtype::F32)).unwrap();
    let sentences = strs(&g["sentences"]);
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let embeddings = model.encode(&texts).unwrap();
    assert_close(
        "wgpu mpnet-st-mean-norm embeddings",
        embeddings.as_slice(),
        &rows(&g["sentence_embedding"]).concat(),
        TOL,
    );
}

/// A collection whose models run on wgpu stores and finds what the same collection on the CPU
/// does, and reopens on the CPU (where a collection's models run is not part of it).
#[test]
fn collection_on_wgpu_matches_the_cpu() {
    if !adapter() {
        return;
    }
    let docs: Vec<Document> = (0..30)
        .map(|i| {
            Document::new(
                format!("doc-{i}"),
                format!("document {i} about topic {} in colour {i}", i % 7),
            )
        })
        .collect();
    let root =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("wgpu-collection-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let on_gpu = Collection::create_with(root.join("gpu"), tiny_collection_config(), &options(Dtype::F32)).unwrap();
    let on_cpu = Collection::create(root.join("cpu"), tiny_collection_config()).unwrap();
    on_gpu.add(docs.clone()).unwrap();
    on_cpu.add(docs).unwrap();

    // Every document comes back (top_k = all), so only scores can differ.
    let scores = |c: &Collection, retriever: Retriever| -> std::collections::HashMap<String, f32> {
        c.search("topic 3 in colour")
            .retrievers(&[retriever])
            .top_k(30)
            .run()
            .unwrap()
            .into_iter()
            .map(|h| (h.id, h.score))
            .collect()
    };
    for retriever in [Retriever::Dense, Retriever::Sparse] {
        let (gpu, cpu) = (scores(&on_gpu, retriever), scores(&on_cpu, retriever));
        assert!(!cpu.is_empty(), "{retriever:?}: no hits to compare");
        assert_eq!(gpu.len(), cpu.len(), "{retriever:?}: different hit sets");
        let mut worst = 0f32;
        for (id, want) in &cpu {
            let got = gpu
                .get(id)
                .unwrap_or_else(|| panic!("{retriever:?}: {id} missing on wgpu"));
            assert!(
                (got - want).abs() <= TOL,
                "{retriever:?} {id}: wgpu {got} vs cpu {want}"
            );
            worst = worst.max((got - want).abs());
        }
        println!("{retriever:?}: {} hits, max |wgpu - cpu| score {worst:.1e}", cpu.len());
    }
    let before = scores(&on_gpu, Retriever::Dense);
    on_gpu.close().unwrap();
    let reopened = Collection::open(root.join("gpu")).unwrap();
    assert_eq!(reopened.len(), 30);
    for (id, score) in scores(&reopened, Retriever::Dense) {
        assert!((score - before[&id]).abs() <= TOL, "{id} after reopening on the cpu");
    }
}

/// Half precision on the GPU: close to f32, same ranking — or, where the adapter lacks the
/// type, a `DeviceUnavailable` error that names it.
fn half_precision_case(dtype: Dtype, cosine_tol: f32) {
    let (g, sentences) = quickstart();
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let model = match SentenceTransformer::from_pretrained_with(MINILM, &options(dtype)) {
        Ok(model) => model,
        Err(e @ EncoderError::DeviceUnavailable { .. }) => {
            let message = e.to_string();
            assert!(message.contains(&dtype.to_string()), "{message}");
            eprintln!("{dtype} unsupported by this adapter, refused clearly: {message}");
            return;
        }
        Err(e) => panic!("{dtype}: {e}\n{}", hub_hint()),
    };
    let embeddings = model.encode(&texts).unwrap();
    let diff = max_abs_diff(embeddings.as_slice(), &rows(&g["embeddings"]).concat());
    eprintln!("wgpu minilm {dtype} embeddings: max |diff| vs f32 golden = {diff:e}");
    let sim = model.similarity(&embeddings, &embeddings).unwrap();
    assert_close(
        &format!("wgpu minilm {dtype} cosine similarities"),
        &sim.concat(),
        &rows(&g["similarity"]).concat(),
        cosine_tol,
    );
    // The quickstart's order: sentence 0 is closest to 1, then 2; 1 is closer to 2 than 0 is.
    let want = rows(&g["similarity"]);
    let order = |m: &[Vec<f32>]| {
        let mut pairs = [(0, 1), (0, 2), (1, 2)];
        pairs.sort_by(|a, b| m[b.0][b.1].total_cmp(&m[a.0][a.1]));
        pairs
    };
    assert_eq!(
        order(&sim),
        order(&want),
        "{dtype}: ranking of the quickstart similarities"
    );
}

#[test]
fn minilm_in_f16() {
    if !adapter() {
        return;
    }
    // f16 keeps 11 significant bits (relative rounding 2^-11 ≈ 5e-4). Weights are rounded once and
    // activations again after every operation of 6 layers; LayerNorm and softmax keep magnitudes
    // near 1, so errors add up rather than compound: a few 1e-3 on a cosine. 1e-2 leaves room for
    // that and still catches a broken kernel (which moves cosines by tenths); the quickstart's
    // cosines lie ≥ 0.036 apart, so within it their ranking cannot change — checked anyway.
    half_precision_case(Dtype::F16, 1e-2);
}

#[test]
fn minilm_in_bf16() {
    if !adapter() {
        return;
    }
    // bf16 keeps 8 significant bits (2^-8 ≈ 4e-3 relative), eight times f16's rounding.
    half_precision_case(Dtype::Bf16, 5e-2);
}

#[test]
fn int8_is_refused_on_wgpu_with_a_clear_error() {
    if !adapter() {
        return;
    }
    let files = ModelFiles::local(fixture("bert-st-mean-norm")).unwrap();
    match SentenceTransformer::from_files(&files, &options(Dtype::Int8)) {
        Err(EncoderError::DeviceUnavailable { device, reason }) => {
            assert_eq!(device, "wgpu");
            assert!(reason.contains("int8") && reason.contains("CPU"), "{reason}");
        }
        Err(e) => panic!("int8 on wgpu must be DeviceUnavailable, got: {e}"),
        Ok(_) => panic!("int8 on wgpu must be refused"),
    }
}

/// Fine-tuning on wgpu (burn's autodiff over the backend, no fused CPU ops): three AdamW steps
/// with dropout off give the CPU run's losses and trained outputs, for a bi-encoder and a
/// reranker on the tiny fixtures, and the trained model's outputs match once saved and reloaded.
#[cfg(feature = "train")]
mod training {
    use sieve::encoders::training::{ModelKind, TrainableModel};
    use sieve::train::losses::{CrossLoss, DenseLoss};
    use sieve::train::trainer::{Example, Objective, Trainer, TrainingArgs};

    use super::*;

    const PAIRS: [(&str, &str); 6] = [
        ("The weather is lovely today.", "It's so sunny outside!"),
        ("He drove to the stadium.", "A man is driving a car."),
        ("A man is eating food.", "A man is eating a piece of bread."),
        (
            "A monkey is playing drums.",
            "Someone in a gorilla costume is playing drums.",
        ),
        ("The new movie is awesome.", "The new movie is so great."),
        ("A woman is playing violin.", "A woman plays the violin on stage."),
    ];

    /// Epoch losses and the model after training on `device`.
    fn train(
        kind: ModelKind,
        fixture_name: &str,
        objective: Objective,
        examples: &[Example],
        device: Device,
    ) -> (Vec<f32>, TrainableModel) {
        let dir = fixture(fixture_name);
        let mut model = TrainableModel::from_pretrained_on(kind, dir.to_str().unwrap(), device)
            .unwrap_or_else(|e| panic!("{fixture_name} on {device}: {e}"));
        let args = TrainingArgs {
            epochs: 1,
            batch_size: 2,
            lr: 5e-4,
            warmup_ratio: 0.0,
            dropout: false,
            ..TrainingArgs::default()
        };
        let report = Trainer::new(objective, args)
            .fit(&mut model, examples, |_, _, _| Ok(()))
            .unwrap_or_else(|e| panic!("training {fixture_name} on {device}: {e}"));
        assert_eq!(report.steps, 3);
        (report.epoch_losses, model)
    }

    /// The losses agree, and so do the trained models' outputs. The weights themselves are not
    /// compared: AdamW moves a weight whose gradient is next to zero by about the learning rate
    /// in the gradient's sign, which rounding decides differently on the two backends (up to
    /// 3 · lr apart after three steps) while the outputs barely notice.
    fn compare(
        what: &str,
        cpu: &(Vec<f32>, TrainableModel),
        gpu: &(Vec<f32>, TrainableModel),
        outputs: impl Fn(&TrainableModel) -> Vec<f32>,
    ) {
        let loss_diff = max_abs_diff(&cpu.0, &gpu.0);
        assert!(
            loss_diff <= TOL * cpu.0[0].abs().max(1.0),
            "{what}: losses {:?} on the CPU, {:?} on wgpu",
            cpu.0,
            gpu.0
        );
        let (a, b) = (outputs(&cpu.1), outputs(&gpu.1));
        let diff = max_abs_diff(&a, &b);
        assert!(diff <= 1e-3, "{what}: the trained models' outputs differ by {diff}");
        let start = TrainableModel::from_pretrained(cpu.1.kind(), fixture(what).to_str().unwrap()).unwrap();
        let trained = max_abs_diff(&outputs(&start), &a);
        assert!(
            trained > 10.0 * diff.max(1e-4),
            "{what}: training moved the outputs by {trained} only"
        );
    }

    #[test]
    fn a_bi_encoder_trains_on_wgpu_as_on_the_cpu() {
        if !adapter() {
            return;
        }
        let examples: Vec<Example> = PAIRS.iter().map(|(a, p)| Example::pair(a, p)).collect();
        let run = |device| {
            train(
                ModelKind::SentenceTransformer,
                "bert-st-mean-norm",
                Objective::Dense(DenseLoss::default()),
                &examples,
                device,
            )
        };
        let (cpu, gpu) = (run(Device::Cpu), run(Device::Wgpu));
        let texts: Vec<&str> = PAIRS.iter().map(|(a, _)| *a).collect();
        compare("bert-st-mean-norm", &cpu, &gpu, |m| {
            m.embed(&texts).unwrap().into_data().try_to_vec::<f32>().unwrap()
        });

        let out = ScratchDir::new("wgpu-trained-bi-encoder");
        gpu.1.save(&out).unwrap();
        let trained = gpu.1.embed(&texts).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let reloaded = SentenceTransformer::load(&out).unwrap().encode(&texts).unwrap();
        assert!(max_abs_diff(&trained, reloaded.as_slice()) <= TOL);
    }

    #[test]
    fn a_reranker_trains_on_wgpu_as_on_the_cpu() {
        if !adapter() {
            return;
        }
        // One positive and one negative per query: the next pair's document.
        let examples: Vec<Example> = (0..PAIRS.len())
            .map(|i| {
                let (query, positive) = PAIRS[i];
                let negative = PAIRS[(i + 1) % PAIRS.len()].1;
                Example::with_negatives(query, positive, &[negative])
            })
            .collect();
        let run = |device| {
            train(
                ModelKind::CrossEncoder,
                "roberta-ce",
                Objective::Cross(CrossLoss::SOFTMAX),
                &examples,
                device,
            )
        };
        let pairs: Vec<(&str, &str)> = PAIRS.to_vec();
        compare("roberta-ce", &run(Device::Cpu), &run(Device::Wgpu), |m| {
            m.logits(&pairs).unwrap().into_data().try_to_vec::<f32>().unwrap()
        });
    }
}
