//! Broken model folders and bad arguments give typed errors that name the problem — never a panic.

mod common;

use std::path::PathBuf;

use common::{copy_dir, fixture};
use sieve::{
    CrossEncoder, Device, Dtype, EncodeOptions, EncoderError, LoadOptions, ModelFiles, SentenceTransformer,
    SparseEncoder,
};

/// A private copy of a fixture folder, removed on drop (a [`common::ScratchDir`]).
struct Scratch(common::ScratchDir);

impl Scratch {
    fn of(name: &str, tag: &str) -> Self {
        let dir = common::ScratchDir::new(&format!("bad-input-{tag}"));
        copy_dir(&fixture(name), &dir);
        Scratch(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    /// Rewrites `config.json` through `edit`.
    fn edit_config(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = self.path("config.json");
        let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut config);
        std::fs::write(path, config.to_string()).unwrap();
    }
}

fn load_error(dir: &Scratch) -> EncoderError {
    match SentenceTransformer::load(&dir.0) {
        Ok(_) => panic!("loading {} should have failed", dir.0.display()),
        Err(e) => e,
    }
}

#[test]
fn missing_files_are_named() {
    for file in [
        "tokenizer.json",
        "model.safetensors",
        "config.json",
        "1_Pooling/config.json",
    ] {
        let dir = Scratch::of("bert-st-mean-norm", &format!("missing-{}", file.replace('/', "-")));
        std::fs::remove_file(dir.path(file)).unwrap();
        let err = load_error(&dir);
        assert!(matches!(err, EncoderError::ModelFileMissing { .. }), "{file}: {err:?}");
        assert!(err.to_string().contains(file), "{file}: {err}");
    }
}

#[test]
fn a_folder_that_does_not_exist_is_an_error() {
    let err = SentenceTransformer::load("/nonexistent/sieve-model")
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("/nonexistent/sieve-model"), "{err}");
}

#[test]
fn corrupt_config_is_named() {
    let dir = Scratch::of("bert-st-mean-norm", "corrupt-config");
    std::fs::write(dir.path("config.json"), "{\"hidden_size\": 32,").unwrap();
    let err = load_error(&dir);
    assert!(matches!(err, EncoderError::InvalidConfig { .. }), "{err:?}");
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn corrupt_or_truncated_weights_are_errors() {
    let dir = Scratch::of("bert-st-mean-norm", "corrupt-weights");
    std::fs::write(
        dir.path("model.safetensors"),
        b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage",
    )
    .unwrap();
    let err = load_error(&dir);
    assert!(matches!(err, EncoderError::InvalidWeights { .. }), "{err:?}");

    let original = std::fs::read(fixture("bert-st-mean-norm").join("model.safetensors")).unwrap();
    std::fs::write(dir.path("model.safetensors"), &original[..original.len() / 2]).unwrap();
    let err = load_error(&dir);
    assert!(matches!(err, EncoderError::InvalidWeights { .. }), "{err:?}");
}

#[test]
fn missing_tensor_names_the_key() {
    let dir = Scratch::of("bert-st-mean-norm", "missing-tensor");
    dir.edit_config(|c| c["num_hidden_layers"] = 3.into());
    let err = load_error(&dir);
    let text = err.to_string();
    assert!(matches!(err, EncoderError::MissingTensor { .. }), "{err:?}");
    assert!(text.contains("encoder.layer.2."), "{text}");
}

#[test]
fn mis_shaped_tensor_names_key_and_both_shapes() {
    let dir = Scratch::of("bert-st-mean-norm", "bad-shape");
    dir.edit_config(|c| c["intermediate_size"] = 65.into());
    let err = load_error(&dir);
    let text = err.to_string();
    assert!(matches!(err, EncoderError::ShapeMismatch { .. }), "{err:?}");
    assert!(
        text.contains("intermediate.dense.weight") && text.contains("[65, 32]") && text.contains("[64, 32]"),
        "{text}"
    );
}

/// Folders that loaded and then panicked on the first encode (each made `sieve encode` exit
/// 101): an error at load naming the field, or a clamp.
#[test]
fn configs_that_would_fail_mid_encode_are_refused_at_load() {
    for (heads, tag) in [(0, "zero-heads"), (3, "uneven-heads")] {
        let dir = Scratch::of("bert-st-mean-norm", tag);
        dir.edit_config(|c| c["num_attention_heads"] = heads.into());
        let err = load_error(&dir);
        assert!(matches!(err, EncoderError::InvalidConfig { .. }), "{tag}: {err:?}");
        assert!(
            err.to_string().contains(&format!(
                "num_attention_heads ({heads}) must be positive and divide hidden_size (32)"
            )),
            "{err}"
        );
    }

    // A tokenizer with ids past the embedding table (here one added token, id 600 of 500 rows).
    let dir = Scratch::of("bert-st-mean-norm", "vocab");
    let path = dir.path("tokenizer.json");
    let mut tokenizer: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    tokenizer["model"]["vocab"]["zyzzyva"] = 600.into();
    std::fs::write(&path, tokenizer.to_string()).unwrap();
    let err = load_error(&dir);
    assert!(matches!(err, EncoderError::InvalidConfig { .. }), "{err:?}");
    assert!(
        err.to_string().contains("vocab_size is 500") && err.to_string().contains("600"),
        "{err}"
    );

    // max_seq_length past the position table (128) is clamped to it, and long texts encode.
    let dir = Scratch::of("bert-st-mean-norm", "seq-length");
    let path = dir.path("sentence_bert_config.json");
    let mut sbert: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    sbert["max_seq_length"] = 100_000.into();
    std::fs::write(&path, sbert.to_string()).unwrap();
    let model = SentenceTransformer::load(&dir.0).unwrap();
    assert_eq!(model.max_seq_length(), 128);
    let long = "word ".repeat(1_000);
    let embedding = model.encode(&[long.as_str()]).unwrap();
    assert!(embedding.row(0).iter().all(|x| x.is_finite()));
}

/// A syntax error inside tokenizer.json's `decoder` made the tokenizers crate panic (an
/// `expect` in its decoder deserializer) instead of returning an error; found by
/// fuzz/model_folder.
#[test]
fn a_malformed_tokenizer_decoder_is_an_error_not_a_panic() {
    let dir = Scratch::of("bert-st-mean-norm", "decoder");
    let path = dir.path("tokenizer.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text.find("\"decoder\"").expect("the fixture has a decoder");
    let broken = format!(
        "{}\"decoder\": {{\"type\": \"WordPiece\", \"prefix\": \"##\"\"oops\": 1}}}}",
        &text[..at]
    );
    std::fs::write(&path, broken).unwrap();
    let err = load_error(&dir);
    assert!(matches!(err, EncoderError::Tokenizer(_)), "{err:?}");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

/// A post-processor template naming a special token it does not define loaded fine, then
/// the tokenizers crate panicked ("no entry found for key") on every encode; found by fuzzing.
#[test]
fn a_tokenizer_that_cannot_encode_is_refused_at_load() {
    let dir = Scratch::of("bert-st-mean-norm", "template");
    let path = dir.path("tokenizer.json");
    let mut tokenizer: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let specials = tokenizer["post_processor"]["special_tokens"]
        .as_object_mut()
        .expect("the fixture's post-processor is a template");
    specials.remove("[SEP]").expect("[SEP] is defined");
    std::fs::write(&path, tokenizer.to_string()).unwrap();
    let err = load_error(&dir);
    assert!(matches!(err, EncoderError::Tokenizer(_)), "{err:?}");
    assert!(err.to_string().contains("cannot encode a trial text"), "{err}");
}

#[test]
fn unknown_architecture_lists_the_supported_ones() {
    let dir = Scratch::of("bert-st-mean-norm", "unknown-arch");
    dir.edit_config(|c| {
        c["architectures"] = serde_json::json!(["LlamaForCausalLM"]);
        c["model_type"] = "llama".into();
    });
    let err = load_error(&dir);
    let text = err.to_string();
    assert!(
        text.contains("LlamaForCausalLM") && text.contains("BertModel") && text.contains("DistilBertModel"),
        "{text}"
    );
}

#[test]
fn cross_encoder_without_classifier_is_an_error_not_a_panic() {
    // A bi-encoder checkpoint has no classifier head.
    let err = CrossEncoder::load(fixture("bert-st-mean-norm"))
        .err()
        .expect("must fail");
    assert!(
        err.to_string().contains("pooler.dense.weight") || err.to_string().contains("classifier"),
        "{err}"
    );
    let err = SparseEncoder::load(fixture("bert-st-mean-norm"))
        .err()
        .expect("must fail");
    assert!(
        matches!(
            err,
            EncoderError::MissingTensor { .. } | EncoderError::InvalidArgument(_)
        ),
        "{err:?}"
    );
}

#[test]
fn unknown_prompt_name_is_an_error() {
    let model = SentenceTransformer::load(fixture("bert-st-mean-norm")).unwrap();
    let options = EncodeOptions {
        prompt_name: Some("nope".into()),
        ..Default::default()
    };
    let err = model.encode_with(&["x"], &options).unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains("query"), "{err}");
}

#[test]
fn gpu_devices_without_their_feature_say_so() {
    if cfg!(feature = "wgpu") {
        eprintln!("skipped: this build has the wgpu feature, so Device::Wgpu is available");
        return;
    }
    let files = ModelFiles::local(fixture("bert-st-mean-norm")).unwrap();
    let err = SentenceTransformer::from_files(
        &files,
        &LoadOptions {
            device: Device::Wgpu,
            ..LoadOptions::default()
        },
    )
    .err()
    .expect("must fail");
    assert!(err.to_string().contains("wgpu"), "{err}");
}

#[test]
fn half_precision_on_the_cpu_says_it_is_for_gpus() {
    let files = ModelFiles::local(fixture("bert-st-mean-norm")).unwrap();
    let load = |dtype| {
        SentenceTransformer::from_files(
            &files,
            &LoadOptions {
                dtype,
                ..LoadOptions::default()
            },
        )
    };
    let err = load(Dtype::F16).err().expect("f16 must fail on the CPU").to_string();
    assert!(
        err.contains("f16") && err.contains("GPU") && err.contains("int8"),
        "{err}"
    );
    // bf16 runs where the CPU has AVX-512 BF16 and is refused, saying so, elsewhere.
    match load(Dtype::Bf16) {
        Ok(model) => assert_eq!(model.dtype(), Dtype::Bf16),
        Err(e) => assert!(e.to_string().contains("AVX-512 BF16"), "{e}"),
    }
}
