//! The transformer architectures sieve runs, one file per family, and the heads each task needs.

pub mod bert;
pub(crate) mod cpu;
pub mod distilbert;
pub(crate) mod dropout;
pub(crate) mod layers;
pub mod mpnet;
pub mod roberta;

use std::path::Path;

use burn::tensor::{Device, FloatDType, Int, Tensor, TensorData, activation};
use serde_json::Value;

use self::bert::{BertClassificationHead, BertConfig, BertLayer, BertLmHead, BertModel};
use self::cpu::attention::RelativeBias;
use self::cpu::encoder::{CpuEncoder, pad, real_positions, runs_on_host, unpad};
use self::cpu::linear::host;
use self::cpu::lm_head::CpuLmHead;
use self::distilbert::{DistilBertClassificationHead, DistilBertConfig, DistilBertLmHead, DistilBertModel};
use self::layers::Activation;
use self::layers::VocabProjection;
use self::mpnet::{MPNetConfig, MPNetModel};
use self::roberta::{RobertaConfig, RobertaModel};
use crate::checkpoint::Checkpoint;
use crate::device::Dtype;
use crate::error::{EncoderError, Result};

/// `architectures` values of `config.json` that sieve can load.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "BertModel",
    "BertForSequenceClassification",
    "BertForMaskedLM",
    "DistilBertModel",
    "DistilBertForSequenceClassification",
    "DistilBertForMaskedLM",
    "RobertaModel",
    "RobertaForSequenceClassification",
    "RobertaForMaskedLM",
    "XLMRobertaModel",
    "XLMRobertaForSequenceClassification",
    "XLMRobertaForMaskedLM",
    "MPNetModel",
    "MPNetForSequenceClassification",
    "MPNetForMaskedLM",
];

/// What the model is run for; decides which head is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
    /// Token embeddings (SentenceTransformer).
    FeatureExtraction,
    /// Logits per text pair (CrossEncoder).
    SequenceClassification { num_labels: usize },
    /// Vocabulary logits per token (SparseEncoder).
    MaskedLm,
}

enum Backbone {
    Bert(BertModel),
    DistilBert(DistilBertModel),
    /// RoBERTa and XLM-RoBERTa.
    Roberta(RobertaModel),
    MPNet(MPNetModel),
}

/// RoBERTa, XLM-R and MPNet heads do BERT's arithmetic under other names, so they load into the
/// BERT variants.
enum Head {
    None,
    BertClassifier(BertClassificationHead),
    DistilBertClassifier(DistilBertClassificationHead),
    BertLm(BertLmHead),
    DistilBertLm(DistilBertLmHead),
}

/// A masked-LM head: transform the hidden states, then project them onto the vocabulary.
pub(crate) trait LmHead {
    /// `[batch, seq, hidden]` → `[batch, seq, hidden]`.
    fn transform(&self, hidden: Tensor<3>) -> Tensor<3>;
    /// The projection of transformed states onto the vocabulary.
    fn decoder(&self) -> &VocabProjection;
    /// The head with its weights packed for the host kernels in `dtype`.
    fn on_host(&self, dtype: Dtype) -> CpuLmHead;
}

/// The layers (and a masked-LM head) on sieve's host kernels, for models on the CPU: packed
/// weights in f32, int8 or bf16, attention without padding. The burn layers are dropped.
struct Host {
    encoder: CpuEncoder,
    lm_head: Option<CpuLmHead>,
}

/// A loaded Hugging Face model: backbone plus the head of its task.
pub(crate) struct Model {
    backbone: Backbone,
    head: Head,
    hidden_size: usize,
    max_position_embeddings: usize,
    host: Option<Host>,
}

impl Backbone {
    /// The layers, their head count and activation.
    fn layers_mut(&mut self) -> (&mut Vec<BertLayer>, usize, Activation) {
        match self {
            Self::Bert(m) => (&mut m.layers, m.config.num_attention_heads, m.act),
            Self::Roberta(m) => (&mut m.bert.layers, m.bert.config.num_attention_heads, m.bert.act),
            Self::DistilBert(m) => (&mut m.layers, m.config.n_heads, m.act),
            Self::MPNet(m) => (&mut m.layers, m.config.num_attention_heads, m.act),
        }
    }

    /// The embedding block's output `[batch, seq, hidden]`.
    fn embed(&self, input_ids: Tensor<2, Int>, token_type_ids: Tensor<2, Int>) -> Tensor<3> {
        match self {
            Self::Bert(m) => m.embed(input_ids, token_type_ids, None),
            Self::Roberta(m) => m.embed(input_ids),
            Self::DistilBert(m) => m.embed(input_ids),
            Self::MPNet(m) => m.embed(input_ids),
        }
    }

    fn relative_bias(&self) -> Option<RelativeBias> {
        match self {
            Self::MPNet(m) => Some(m.relative_bias()),
            _ => None,
        }
    }
}

/// The transformer family `config.json` describes, checked against [`SUPPORTED_ARCHITECTURES`].
pub(crate) fn family(config: &Value) -> Result<&'static str> {
    let architecture = config
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Value::as_str);
    let model_type = config.get("model_type").and_then(Value::as_str);
    match (architecture, model_type) {
        (Some(a), _) if a.starts_with("DistilBert") && SUPPORTED_ARCHITECTURES.contains(&a) => Ok("distilbert"),
        (Some(a), _) if a.starts_with("Bert") && SUPPORTED_ARCHITECTURES.contains(&a) => Ok("bert"),
        (Some(a), _) if a.contains("Roberta") && SUPPORTED_ARCHITECTURES.contains(&a) => Ok("roberta"),
        (Some(a), _) if a.starts_with("MPNet") && SUPPORTED_ARCHITECTURES.contains(&a) => Ok("mpnet"),
        (None, Some("bert")) => Ok("bert"),
        (None, Some("distilbert")) => Ok("distilbert"),
        (None, Some("roberta" | "xlm-roberta")) => Ok("roberta"),
        (None, Some("mpnet")) => Ok("mpnet"),
        (found, model_type) => Err(EncoderError::UnsupportedArchitecture {
            found: found.or(model_type).unwrap_or("<none given>").to_string(),
            supported: SUPPORTED_ARCHITECTURES.to_vec(),
        }),
    }
}

/// The head `task` needs on a RoBERTa, XLM-R or MPNet backbone (they share their heads).
fn roberta_style_head(ckpt: &Checkpoint, task: Task, vocab: usize, hidden: usize, eps: f64) -> Result<Head> {
    Ok(match task {
        Task::FeatureExtraction => Head::None,
        Task::SequenceClassification { num_labels } => {
            Head::BertClassifier(roberta::classification_head(ckpt, hidden, num_labels)?)
        }
        Task::MaskedLm => Head::BertLm(roberta::lm_head(ckpt, vocab, hidden, eps)?),
    })
}

/// The attention heads must split the hidden size evenly (BERT-style configs name them
/// `num_attention_heads` / `hidden_size`, DistilBERT `n_heads` / `dim`).
fn check_heads(config: &Value, path: &Path) -> Result<()> {
    let field = |names: [&'static str; 2]| {
        names
            .into_iter()
            .find_map(|name| config.get(name).and_then(Value::as_u64).map(|v| (name, v)))
    };
    let (Some((heads_name, heads)), Some((hidden_name, hidden))) =
        (field(["num_attention_heads", "n_heads"]), field(["hidden_size", "dim"]))
    else {
        return Ok(()); // missing fields are reported by the family's own config parser
    };
    if heads == 0 || hidden % heads != 0 {
        return Err(EncoderError::InvalidConfig {
            path: path.to_path_buf(),
            reason: format!("{heads_name} ({heads}) must be positive and divide {hidden_name} ({hidden})"),
        });
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(config: &Value, path: &Path) -> Result<T> {
    serde_json::from_value(config.clone()).map_err(|e| EncoderError::InvalidConfig {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

impl Model {
    /// Builds the model `config` describes from `weights`, with the head `task` needs.
    pub(crate) fn load(
        config: &Value,
        config_path: &Path,
        weights: &Path,
        task: Task,
        device: &Device,
        dtype: Dtype,
    ) -> Result<Self> {
        Self::load_on(
            config,
            config_path,
            weights,
            task,
            device,
            dtype,
            runs_on_host(device, dtype),
        )
    }

    /// [`Self::load`], with the layers on the host kernels or on burn as `on_host` says.
    fn load_on(
        config: &Value,
        config_path: &Path,
        weights: &Path,
        task: Task,
        device: &Device,
        dtype: Dtype,
        on_host: bool,
    ) -> Result<Self> {
        // On the host, burn keeps f32 copies (embeddings, heads) and the kernels pack their own.
        let float = if on_host { FloatDType::F32 } else { dtype.burn() };
        let ckpt = Checkpoint::open(weights, device, float)?;
        Self::from_checkpoint(config, config_path, &ckpt, task, dtype, on_host)
    }

    /// Builds the model from an opened checkpoint (for training, one whose tensors are
    /// gradient-tracked leaves; the model is then rebuilt after every optimizer step).
    pub(crate) fn from_checkpoint(
        config: &Value,
        config_path: &Path,
        ckpt: &Checkpoint,
        task: Task,
        dtype: Dtype,
        on_host: bool,
    ) -> Result<Self> {
        let family = family(config)?;
        check_heads(config, config_path)?;
        let mut model = match family {
            "bert" => {
                let c: BertConfig = parse(config, config_path)?;
                let head = match task {
                    Task::FeatureExtraction => Head::None,
                    Task::SequenceClassification { num_labels } => {
                        Head::BertClassifier(BertClassificationHead::load(ckpt, &c, num_labels)?)
                    }
                    Task::MaskedLm => Head::BertLm(BertLmHead::load(ckpt, &c)?),
                };
                let (hidden_size, max_position_embeddings) = (c.hidden_size, c.max_position_embeddings);
                Self {
                    backbone: Backbone::Bert(BertModel::load(ckpt, c)?),
                    head,
                    hidden_size,
                    max_position_embeddings,
                    host: None,
                }
            }
            "roberta" => {
                let c: RobertaConfig = parse(config, config_path)?;
                let head = roberta_style_head(ckpt, task, c.vocab_size, c.hidden_size, c.layer_norm_eps)?;
                let hidden_size = c.hidden_size;
                let model = RobertaModel::load(ckpt, c)?;
                Self {
                    max_position_embeddings: model.max_positions(),
                    backbone: Backbone::Roberta(model),
                    head,
                    hidden_size,
                    host: None,
                }
            }
            "mpnet" => {
                let c: MPNetConfig = parse(config, config_path)?;
                let head = roberta_style_head(ckpt, task, c.vocab_size, c.hidden_size, c.layer_norm_eps)?;
                let hidden_size = c.hidden_size;
                let model = MPNetModel::load(ckpt, c)?;
                Self {
                    max_position_embeddings: model.max_positions(),
                    backbone: Backbone::MPNet(model),
                    head,
                    hidden_size,
                    host: None,
                }
            }
            _ => {
                let c: DistilBertConfig = parse(config, config_path)?;
                let head = match task {
                    Task::FeatureExtraction => Head::None,
                    Task::SequenceClassification { num_labels } => {
                        Head::DistilBertClassifier(DistilBertClassificationHead::load(ckpt, &c, num_labels)?)
                    }
                    Task::MaskedLm => Head::DistilBertLm(DistilBertLmHead::load(ckpt, &c)?),
                };
                let (hidden_size, max_position_embeddings) = (c.dim, c.max_position_embeddings);
                Self {
                    backbone: Backbone::DistilBert(DistilBertModel::load(ckpt, c)?),
                    head,
                    hidden_size,
                    max_position_embeddings,
                    host: None,
                }
            }
        };
        if on_host {
            model.move_to_host(dtype);
        }
        Ok(model)
    }

    /// Packs the layers (and a masked-LM head) for the host kernels and drops burn's copies.
    fn move_to_host(&mut self, dtype: Dtype) {
        let bias = self.backbone.relative_bias();
        let (layers, heads, act) = self.backbone.layers_mut();
        let mut encoder = CpuEncoder::new(layers, heads, act, dtype);
        layers.clear();
        if let Some(bias) = bias {
            encoder = encoder.with_bias(bias);
        }
        let lm_head = match &self.head {
            Head::BertLm(h) => Some(h.on_host(dtype)),
            Head::DistilBertLm(h) => Some(h.on_host(dtype)),
            _ => None,
        };
        self.host = Some(Host { encoder, lm_head });
    }

    pub(crate) fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    pub(crate) fn max_position_embeddings(&self) -> usize {
        self.max_position_embeddings
    }

    /// Last hidden state `[batch, seq, hidden]`, in f32 whatever the model computes in.
    pub(crate) fn token_embeddings(
        &self,
        input_ids: Tensor<2, Int>,
        token_type_ids: Tensor<2, Int>,
        attention_mask: &Tensor<2>,
    ) -> Tensor<3> {
        self.hidden_states(input_ids, token_type_ids, attention_mask, false)
            .cast(FloatDType::F32)
    }

    /// Last hidden state in the model's own float type (the heads take it as is), of every
    /// position or (`first_only`, where the family supports it) of the first position alone.
    fn hidden_states(
        &self,
        input_ids: Tensor<2, Int>,
        token_type_ids: Tensor<2, Int>,
        attention_mask: &Tensor<2>,
        first_only: bool,
    ) -> Tensor<3> {
        if let Some(host) = &self.host {
            let [batch, seq] = input_ids.dims();
            let device = input_ids.device();
            let (rows, positions) = self.host_rows(host, input_ids, token_type_ids, attention_mask, first_only);
            let h = self.hidden_size;
            return match first_only {
                true => Tensor::from_data(TensorData::new(rows, [batch, 1, h]), &device),
                false => pad(&rows, h, &positions, seq, &device),
            };
        }
        match &self.backbone {
            Backbone::Bert(m) => m.forward_at(input_ids, token_type_ids, None, attention_mask, first_only),
            Backbone::DistilBert(m) => m.forward(input_ids, attention_mask, first_only),
            // Neither takes segment ids (their tokenizers return none).
            Backbone::Roberta(m) => m.forward(input_ids, attention_mask, first_only),
            Backbone::MPNet(m) => m.forward(input_ids, attention_mask),
        }
    }

    /// The last hidden state of the real tokens, back to back (`[seqs, hidden]` with
    /// `first_only`), computed by the host kernels; and where each text's tokens sat.
    fn host_rows(
        &self,
        host: &Host,
        input_ids: Tensor<2, Int>,
        token_type_ids: Tensor<2, Int>,
        attention_mask: &Tensor<2>,
        first_only: bool,
    ) -> (Vec<f32>, Vec<Vec<usize>>) {
        let [batch, seq] = input_ids.dims();
        let mask: Vec<u32> = host_mask(attention_mask);
        let positions = real_positions(&mask, batch, seq);
        let x = self.backbone.embed(input_ids, token_type_ids);
        let (rows, seqs) = unpad(x, &positions);
        (host.encoder.forward(rows, &seqs, first_only), positions)
    }

    /// Sequence-classification logits `[batch, num_labels]`. The heads read the first position
    /// only, so the last layer computes nothing else.
    pub(crate) fn classify(
        &self,
        input_ids: Tensor<2, Int>,
        token_type_ids: Tensor<2, Int>,
        attention_mask: &Tensor<2>,
    ) -> Tensor<2> {
        let hidden = self.hidden_states(input_ids, token_type_ids, attention_mask, true);
        let logits = match &self.head {
            Head::BertClassifier(h) => h.forward(hidden),
            Head::DistilBertClassifier(h) => h.forward(hidden),
            _ => unreachable!("classify() is only called on models loaded for SequenceClassification"),
        };
        logits.cast(FloatDType::F32)
    }

    /// SPLADE pooling `max_t log(1 + relu(logits[t]))` over unmasked tokens, `[batch, vocab]`.
    ///
    /// `log(1 + relu(·))` is monotone, so it commutes with the maximum: the logits are reduced
    /// over positions first and transformed once per vocabulary entry, not once per token, and
    /// the result is the same to the bit.
    pub(crate) fn splade(
        &self,
        input_ids: Tensor<2, Int>,
        token_type_ids: Tensor<2, Int>,
        attention_mask: &Tensor<2>,
    ) -> Tensor<2> {
        if let Some(Host {
            encoder,
            lm_head: Some(lm_head),
        }) = &self.host
        {
            let [batch, seq] = input_ids.dims();
            let device = input_ids.device();
            let mask = host_mask(attention_mask);
            let positions = real_positions(&mask, batch, seq);
            let (rows, seqs) = unpad(self.backbone.embed(input_ids, token_type_ids), &positions);
            let hidden = encoder.forward(rows, &seqs, false);
            let mut pooled = lm_head.max_logits(&hidden, &seqs);
            pooled.iter_mut().for_each(|v| *v = v.max(0.0).ln_1p());
            let vocab = pooled.len() / batch.max(1);
            return Tensor::from_data(TensorData::new(pooled, [batch, vocab]), &device);
        }
        let hidden = self.hidden_states(input_ids, token_type_ids, attention_mask, false);
        let head: &dyn LmHead = match &self.head {
            Head::BertLm(h) => h,
            Head::DistilBertLm(h) => h,
            _ => unreachable!("splade() is only called on models loaded for MaskedLm"),
        };
        let max_logits = head
            .decoder()
            .max_over_positions(head.transform(hidden), attention_mask);
        activation::relu(max_logits).log1p().cast(FloatDType::F32)
    }
}

/// The attention mask on the host, 1 for a real token.
fn host_mask(attention_mask: &Tensor<2>) -> Vec<u32> {
    host(attention_mask.clone())
        .iter()
        .map(|&m| u32::from(m != 0.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_architectures_are_named_with_the_supported_list() {
        let config: Value = serde_json::json!({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"});
        let err = family(&config).unwrap_err().to_string();
        assert!(err.contains("GPT2LMHeadModel") && err.contains("BertModel"), "{err}");
    }

    #[test]
    fn roberta_xlmr_and_mpnet_by_architecture_or_model_type() {
        let cases = [
            (
                serde_json::json!({"architectures": ["RobertaForSequenceClassification"]}),
                "roberta",
            ),
            (
                serde_json::json!({"architectures": ["XLMRobertaForMaskedLM"]}),
                "roberta",
            ),
            (serde_json::json!({"architectures": ["MPNetModel"]}), "mpnet"),
            (serde_json::json!({"model_type": "xlm-roberta"}), "roberta"),
            (serde_json::json!({"model_type": "roberta"}), "roberta"),
            (serde_json::json!({"model_type": "mpnet"}), "mpnet"),
        ];
        for (config, want) in cases {
            assert_eq!(family(&config).unwrap(), want, "{config}");
        }
        let config = serde_json::json!({"architectures": ["RobertaForCausalLM"]});
        assert!(family(&config).is_err());
    }

    fn fixture_dirs() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let shared = root.join("../../../shared/fixtures");
        if !shared.exists() {
            eprintln!(
                "skipped: {} not found (the shared fixtures sit beside the repository)",
                shared.display()
            );
            return None;
        }
        Some((shared, root.join("../../tests/fixtures")))
    }

    fn load_fixture(dir: &Path, task: Task, on_host: bool, dtype: Dtype) -> Model {
        let config: Value = crate::config::read_json(&dir.join("config.json")).unwrap();
        let weights = dir.join("model.safetensors");
        let config_path = dir.join("config.json");
        Model::load_on(&config, &config_path, &weights, task, &Device::flex(), dtype, on_host).unwrap()
    }

    /// Two texts of 5 and 3 tokens padded to 6; token ids valid in every fixture vocabulary.
    fn inputs() -> (Tensor<2, Int>, Tensor<2>) {
        use burn::tensor::TensorData;
        let device = Device::flex();
        let ids: Vec<i64> = vec![2, 17, 45, 99, 3, 1, 2, 88, 3, 1, 1, 1];
        let mask: Vec<f32> = vec![1., 1., 1., 1., 1., 0., 1., 1., 1., 0., 0., 0.];
        (
            Tensor::from_data(TensorData::new(ids, [2, 6]), &device),
            Tensor::from_data(TensorData::new(mask, [2, 6]), &device),
        )
    }

    /// The host kernels (packed GEMMs, attention without padding) compute what burn's layers
    /// compute, for every family and head, at the real tokens.
    #[test]
    fn host_kernels_match_burn_on_every_family() {
        let Some((shared, local)) = fixture_dirs() else { return };
        let (ids, mask) = inputs();
        let hidden_cases = [
            shared.join("bert-st-mean-norm"),
            shared.join("distilbert-st-cls"),
            shared.join("roberta-ce"),
            shared.join("xlmr-ce"),
            local.join("mpnet-st-mean-norm"),
        ];
        for dir in hidden_cases {
            let run = |on_host| {
                let model = load_fixture(&dir, Task::FeatureExtraction, on_host, Dtype::F32);
                let hidden = model.hidden_states(ids.clone(), ids.zeros_like(), &mask, false);
                hidden * mask.clone().unsqueeze_dim::<3>(2)
            };
            let diff: f32 = (run(true) - run(false)).abs().max().into_scalar();
            assert!(diff < 1e-5, "{}: {diff}", dir.display());
        }
        for dir in [shared.join("bert-splade"), local.join("roberta-splade")] {
            let run = |on_host| {
                let model = load_fixture(&dir, Task::MaskedLm, on_host, Dtype::F32);
                model.splade(ids.clone(), ids.zeros_like(), &mask)
            };
            let diff: f32 = (run(true) - run(false)).abs().max().into_scalar();
            assert!(diff < 1e-5, "{}: {diff}", dir.display());
        }
    }

    /// The first-position-only last layer gives the first row of the full computation.
    #[test]
    fn first_only_equals_the_first_row_of_every_position() {
        let Some((shared, _)) = fixture_dirs() else { return };
        let (ids, mask) = inputs();
        for name in ["bert-nli-ce", "distilbert-st-cls", "roberta-ce"] {
            for on_host in [false, true] {
                let model = load_fixture(&shared.join(name), Task::FeatureExtraction, on_host, Dtype::F32);
                let run = |first_only| model.hidden_states(ids.clone(), ids.zeros_like(), &mask, first_only);
                let full = run(false).narrow(1, 0, 1);
                let first = run(true);
                let diff: f32 = (full - first).abs().max().into_scalar();
                assert!(diff < 1e-6, "{name} (host: {on_host}): {diff}");
            }
        }
    }
}
