//! The transformer architectures sieve runs, one file per family, and the heads each task needs.

pub mod bert;
pub(crate) mod cpu;
pub mod distilbert;
pub(crate) mod layers;
pub mod mpnet;
pub mod roberta;

use std::path::Path;

use burn::tensor::{Device, FloatDType, Int, Tensor, activation};
use serde_json::Value;

use self::bert::{BertClassificationHead, BertConfig, BertLmHead, BertModel};
use self::distilbert::{DistilBertClassificationHead, DistilBertConfig, DistilBertLmHead, DistilBertModel};
use self::layers::VocabProjection;
use self::mpnet::{MPNetConfig, MPNetModel};
use self::roberta::{RobertaConfig, RobertaModel};
use crate::checkpoint::Checkpoint;
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
}

/// A loaded Hugging Face model: backbone plus the head of its task.
pub(crate) struct Model {
    backbone: Backbone,
    head: Head,
    hidden_size: usize,
    max_position_embeddings: usize,
}

/// The transformer family `config.json` describes, checked against [`SUPPORTED_ARCHITECTURES`].
fn family(config: &Value) -> Result<&'static str> {
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
        dtype: FloatDType,
    ) -> Result<Self> {
        let family = family(config)?;
        let ckpt = Checkpoint::open(weights, device, dtype)?;
        Ok(match family {
            "bert" => {
                let c: BertConfig = parse(config, config_path)?;
                let head = match task {
                    Task::FeatureExtraction => Head::None,
                    Task::SequenceClassification { num_labels } => {
                        Head::BertClassifier(BertClassificationHead::load(&ckpt, &c, num_labels)?)
                    }
                    Task::MaskedLm => Head::BertLm(BertLmHead::load(&ckpt, &c)?),
                };
                let (hidden_size, max_position_embeddings) = (c.hidden_size, c.max_position_embeddings);
                Self {
                    backbone: Backbone::Bert(BertModel::load(&ckpt, c)?),
                    head,
                    hidden_size,
                    max_position_embeddings,
                }
            }
            "roberta" => {
                let c: RobertaConfig = parse(config, config_path)?;
                let head = roberta_style_head(&ckpt, task, c.vocab_size, c.hidden_size, c.layer_norm_eps)?;
                let hidden_size = c.hidden_size;
                let model = RobertaModel::load(&ckpt, c)?;
                Self {
                    max_position_embeddings: model.max_positions(),
                    backbone: Backbone::Roberta(model),
                    head,
                    hidden_size,
                }
            }
            "mpnet" => {
                let c: MPNetConfig = parse(config, config_path)?;
                let head = roberta_style_head(&ckpt, task, c.vocab_size, c.hidden_size, c.layer_norm_eps)?;
                let hidden_size = c.hidden_size;
                let model = MPNetModel::load(&ckpt, c)?;
                Self {
                    max_position_embeddings: model.max_positions(),
                    backbone: Backbone::MPNet(model),
                    head,
                    hidden_size,
                }
            }
            _ => {
                let c: DistilBertConfig = parse(config, config_path)?;
                let head = match task {
                    Task::FeatureExtraction => Head::None,
                    Task::SequenceClassification { num_labels } => {
                        Head::DistilBertClassifier(DistilBertClassificationHead::load(&ckpt, &c, num_labels)?)
                    }
                    Task::MaskedLm => Head::DistilBertLm(DistilBertLmHead::load(&ckpt, &c)?),
                };
                let (hidden_size, max_position_embeddings) = (c.dim, c.max_position_embeddings);
                Self {
                    backbone: Backbone::DistilBert(DistilBertModel::load(&ckpt, c)?),
                    head,
                    hidden_size,
                    max_position_embeddings,
                }
            }
        })
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
        match &self.backbone {
            Backbone::Bert(m) => m.forward_at(input_ids, token_type_ids, None, attention_mask, first_only),
            Backbone::DistilBert(m) => m.forward(input_ids, attention_mask, first_only),
            // Neither takes segment ids (their tokenizers return none).
            Backbone::Roberta(m) => m.forward(input_ids, attention_mask, first_only),
            Backbone::MPNet(m) => m.forward(input_ids, attention_mask),
        }
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

    /// The first-position-only last layer gives the first row of the full computation.
    #[test]
    fn first_only_equals_the_first_row_of_every_position() {
        use burn::tensor::TensorData;
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
        if !fixtures.exists() {
            eprintln!(
                "skipped: {} not found (the shared fixtures sit beside the repository)",
                fixtures.display()
            );
            return;
        }
        let device = Device::flex();
        let ids: Vec<i64> = vec![2, 17, 45, 99, 3, 1, 2, 88, 3, 1, 1, 1];
        let mask: Vec<f32> = vec![1., 1., 1., 1., 1., 0., 1., 1., 1., 0., 0., 0.];
        for name in ["bert-nli-ce", "distilbert-st-cls", "roberta-ce"] {
            let dir = fixtures.join(name);
            let config: Value = crate::config::read_json(&dir.join("config.json")).unwrap();
            let model = Model::load(
                &config,
                &dir.join("config.json"),
                &dir.join("model.safetensors"),
                Task::FeatureExtraction,
                &device,
                FloatDType::F32,
            )
            .unwrap();
            let input_ids = || Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [2, 6]), &device);
            let attention_mask = Tensor::<2>::from_data(TensorData::new(mask.clone(), [2, 6]), &device);
            let run =
                |first_only| model.hidden_states(input_ids(), input_ids().zeros_like(), &attention_mask, first_only);
            let full = run(false).narrow(1, 0, 1);
            let first = run(true);
            let diff: f32 = (full - first).abs().max().into_scalar();
            assert!(diff < 1e-6, "{name}: {diff}");
        }
    }
}
