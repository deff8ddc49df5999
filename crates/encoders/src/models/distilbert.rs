//! DistilBERT (`DistilBertModel`, `DistilBertForSequenceClassification`, `DistilBertForMaskedLM`)
//! as in `transformers/models/distilbert/modeling_distilbert.py`.

use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::{Int, Tensor, activation};
use serde::Deserialize;

use super::LmHead;
use super::bert::{BertLayer, LayerKeys};
use super::cpu::encoder::CpuLayerNorm;
use super::cpu::linear::CpuLinear;
use super::cpu::lm_head::CpuLmHead;
use super::dropout::{Site, dropout};
use super::layers::{Activation, VocabProjection, padding_mask};
use crate::checkpoint::Checkpoint;
use crate::device::Dtype;
use crate::error::Result;

/// DistilBERT's LayerNorm epsilon is fixed in the modeling code, not configured.
const LAYER_NORM_EPS: f64 = 1e-12;

/// `config.json` of a DistilBERT model, field for field.
#[derive(Debug, Clone, Deserialize)]
pub struct DistilBertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden width.
    pub dim: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Attention heads per block.
    pub n_heads: usize,
    /// Feed-forward width.
    pub hidden_dim: usize,
    /// Feed-forward activation.
    #[serde(default = "default_activation")]
    pub activation: String,
    /// Length of the position table.
    pub max_position_embeddings: usize,
    /// Padding token id.
    #[serde(default)]
    pub pad_token_id: Option<usize>,
}

fn default_activation() -> String {
    "gelu".into()
}

/// `TransformerBlock` (`MultiHeadSelfAttention`, `sa_layer_norm`, `FFN`, `output_layer_norm`) is
/// `BertLayer`'s arithmetic under other names.
const DISTILBERT_LAYER_KEYS: LayerKeys = LayerKeys {
    layers: "transformer.layer",
    query: "attention.q_lin",
    key: "attention.k_lin",
    value: "attention.v_lin",
    attention_output_dense: "attention.out_lin",
    attention_output_layer_norm: "sa_layer_norm",
    intermediate_dense: "ffn.lin1",
    output_dense: "ffn.lin2",
    output_layer_norm: "output_layer_norm",
};

/// `DistilBertModel`: token embeddings out. DistilBERT has no token types.
pub(crate) struct DistilBertModel {
    pub(crate) config: DistilBertConfig,
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    embeddings_layer_norm: LayerNorm,
    /// Emptied when the layers run on the host kernels instead.
    pub(crate) layers: Vec<BertLayer>,
    pub(crate) act: Activation,
}

impl DistilBertModel {
    pub(crate) fn load(ckpt: &Checkpoint, config: DistilBertConfig) -> Result<Self> {
        let d = config.dim;
        let layers = (0..config.n_layers)
            .map(|i| BertLayer::load(ckpt, &DISTILBERT_LAYER_KEYS, i, d, config.hidden_dim, LAYER_NORM_EPS))
            .collect::<Result<_>>()?;
        Ok(Self {
            word_embeddings: ckpt.embedding("embeddings.word_embeddings.weight", config.vocab_size, d)?,
            position_embeddings: ckpt.embedding(
                "embeddings.position_embeddings.weight",
                config.max_position_embeddings,
                d,
            )?,
            embeddings_layer_norm: ckpt.layer_norm("embeddings.LayerNorm", d, LAYER_NORM_EPS)?,
            layers,
            act: Activation::from_config(&config.activation)?,
            config,
        })
    }

    /// Last hidden state `[batch, seq, dim]`; with `first_only` the last block computes the
    /// first position alone, `[batch, 1, dim]`.
    pub(crate) fn forward(&self, input_ids: Tensor<2, Int>, attention_mask: &Tensor<2>, first_only: bool) -> Tensor<3> {
        let mut x = self.embed(input_ids);
        let heads = self.config.n_heads;
        let mask = padding_mask(attention_mask, heads);
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, &mask, heads, self.act, first_only && i == last);
        }
        x
    }
}

impl DistilBertModel {
    /// `Embeddings`: word + position, then LayerNorm, `[batch, seq, dim]`.
    pub(crate) fn embed(&self, input_ids: Tensor<2, Int>) -> Tensor<3> {
        let [batch, seq] = input_ids.dims();
        let device = input_ids.device();
        let position_ids = Tensor::<1, Int>::arange(0..seq as i64, &device).reshape([1, seq]);
        let positions = self
            .position_embeddings
            .forward(position_ids)
            .expand([batch, seq, self.config.dim]);
        let embeddings = self
            .embeddings_layer_norm
            .forward(self.word_embeddings.forward(input_ids) + positions);
        dropout(embeddings, Site::Embeddings)
    }
}

/// `pre_classifier` + ReLU + `classifier` of `DistilBertForSequenceClassification`.
pub(crate) struct DistilBertClassificationHead {
    pre_classifier: Linear,
    classifier: Linear,
}

impl DistilBertClassificationHead {
    pub(crate) fn load(ckpt: &Checkpoint, c: &DistilBertConfig, num_labels: usize) -> Result<Self> {
        Ok(Self {
            pre_classifier: ckpt.linear("pre_classifier", c.dim, c.dim)?,
            classifier: ckpt.linear("classifier", c.dim, num_labels)?,
        })
    }

    pub(crate) fn forward(&self, hidden: Tensor<3>) -> Tensor<2> {
        let [batch, _, d] = hidden.dims();
        let cls = hidden.narrow(1, 0, 1).reshape([batch, d]);
        let pooled = activation::relu(self.pre_classifier.forward(cls));
        self.classifier.forward(dropout(pooled, Site::Classifier))
    }
}

/// `vocab_transform`, activation, `vocab_layer_norm`, `vocab_projector` (tied to the word embeddings).
pub(crate) struct DistilBertLmHead {
    vocab_transform: Linear,
    vocab_layer_norm: LayerNorm,
    act: Activation,
    decoder: VocabProjection,
}

impl DistilBertLmHead {
    pub(crate) fn load(ckpt: &Checkpoint, c: &DistilBertConfig) -> Result<Self> {
        // Tied to the word embeddings in most checkpoints; KEY_RULES knows where to look.
        let decoder = ckpt.tensor2("vocab_projector.weight", [c.vocab_size, c.dim])?;
        Ok(Self {
            vocab_transform: ckpt.linear("vocab_transform", c.dim, c.dim)?,
            vocab_layer_norm: ckpt.layer_norm("vocab_layer_norm", c.dim, LAYER_NORM_EPS)?,
            act: Activation::from_config(&c.activation)?,
            decoder: VocabProjection::new(decoder, ckpt.tensor1("vocab_projector.bias", c.vocab_size)?),
        })
    }
}

impl LmHead for DistilBertLmHead {
    fn transform(&self, hidden: Tensor<3>) -> Tensor<3> {
        self.vocab_layer_norm
            .forward(self.act.forward_linear(&self.vocab_transform, hidden))
    }

    fn decoder(&self) -> &VocabProjection {
        &self.decoder
    }

    fn on_host(&self, dtype: Dtype) -> CpuLmHead {
        let (decoder, bias) = self.decoder.host_parts();
        CpuLmHead::new(
            CpuLinear::from_burn(&self.vocab_transform, dtype),
            self.act,
            CpuLayerNorm::from_burn(&self.vocab_layer_norm, LAYER_NORM_EPS),
            &decoder,
            &bias,
            dtype,
        )
    }
}
