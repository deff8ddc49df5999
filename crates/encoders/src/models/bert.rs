//! BERT (`BertModel`, `BertForSequenceClassification`, `BertForMaskedLM`), block for block as in
//! `transformers/models/bert/modeling_bert.py`. Struct and field names follow the checkpoint keys.

use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::{Int, Tensor, activation};
use serde::Deserialize;

use super::LmHead;
use super::cpu::encoder::CpuLayerNorm;
use super::cpu::linear::CpuLinear;
use super::cpu::lm_head::CpuLmHead;
use super::dropout::{Site, dropout};
use super::layers::{Activation, VocabProjection, layer_norm, linear, multi_head_attention, padding_mask};
use crate::checkpoint::Checkpoint;
use crate::device::Dtype;
use crate::error::Result;

/// `config.json` of a BERT model, field for field (only what inference needs).
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    /// Size of the WordPiece vocabulary.
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Number of `BertLayer`s.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward block.
    pub intermediate_size: usize,
    /// Activation of the feed-forward block.
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    /// Length of the learned position table.
    pub max_position_embeddings: usize,
    /// Number of segment (token type) embeddings.
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Padding token id.
    #[serde(default)]
    pub pad_token_id: Option<usize>,
    /// `absolute` is the only kind sieve runs.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

pub(crate) fn default_hidden_act() -> String {
    "gelu".into()
}
fn default_type_vocab_size() -> usize {
    2
}
pub(crate) fn default_layer_norm_eps() -> f64 {
    1e-12
}

/// `BertEmbeddings`: word + position + token type, then LayerNorm.
pub(crate) struct BertEmbeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    token_type_embeddings: Embedding,
    layer_norm: LayerNorm,
    eps: f64,
}

impl BertEmbeddings {
    fn load(ckpt: &Checkpoint, c: &BertConfig) -> Result<Self> {
        let h = c.hidden_size;
        Ok(Self {
            word_embeddings: ckpt.embedding("embeddings.word_embeddings.weight", c.vocab_size, h)?,
            position_embeddings: ckpt.embedding(
                "embeddings.position_embeddings.weight",
                c.max_position_embeddings,
                h,
            )?,
            token_type_embeddings: ckpt.embedding("embeddings.token_type_embeddings.weight", c.type_vocab_size, h)?,
            layer_norm: ckpt.layer_norm("embeddings.LayerNorm", h, c.layer_norm_eps)?,
            eps: c.layer_norm_eps,
        })
    }

    /// `position_ids` `[batch, seq]`, or `None` for `0..seq`.
    fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        token_type_ids: Tensor<2, Int>,
        position_ids: Option<Tensor<2, Int>>,
    ) -> Tensor<3> {
        let [batch, seq] = input_ids.dims();
        let positions = match position_ids {
            Some(ids) => self.position_embeddings.forward(ids),
            None => {
                let device = input_ids.device();
                let position_ids = Tensor::<1, Int>::arange(0..seq as i64, &device).reshape([1, seq]);
                let positions = self.position_embeddings.forward(position_ids);
                positions.expand([batch, seq, self.word_embeddings.weight.dims()[1]])
            }
        };
        let embeddings =
            self.word_embeddings.forward(input_ids) + self.token_type_embeddings.forward(token_type_ids) + positions;
        dropout(layer_norm(&self.layer_norm, self.eps, embeddings), Site::Embeddings)
    }
}

/// Where a `BertLayer`'s blocks sit in a checkpoint, relative to the layer; RoBERTa uses BERT's
/// names, MPNet stores the same blocks under its own.
pub(crate) struct LayerKeys {
    /// The list of layers: `{layers}.{i}.{block}`.
    pub(crate) layers: &'static str,
    pub(crate) query: &'static str,
    pub(crate) key: &'static str,
    pub(crate) value: &'static str,
    pub(crate) attention_output_dense: &'static str,
    pub(crate) attention_output_layer_norm: &'static str,
    pub(crate) intermediate_dense: &'static str,
    pub(crate) output_dense: &'static str,
    pub(crate) output_layer_norm: &'static str,
}

/// BERT's (and RoBERTa's) names for the blocks of `encoder.layer.{i}`.
pub(crate) const BERT_LAYER_KEYS: LayerKeys = LayerKeys {
    layers: "encoder.layer",
    query: "attention.self.query",
    key: "attention.self.key",
    value: "attention.self.value",
    attention_output_dense: "attention.output.dense",
    attention_output_layer_norm: "attention.output.LayerNorm",
    intermediate_dense: "intermediate.dense",
    output_dense: "output.dense",
    output_layer_norm: "output.LayerNorm",
};

/// `BertLayer`: `BertAttention` (self-attention + `BertSelfOutput`), `BertIntermediate`, `BertOutput`.
pub(crate) struct BertLayer {
    pub(crate) query: Linear,
    pub(crate) key: Linear,
    pub(crate) value: Linear,
    pub(crate) attention_output_dense: Linear,
    pub(crate) attention_output_layer_norm: LayerNorm,
    pub(crate) intermediate_dense: Linear,
    pub(crate) output_dense: Linear,
    pub(crate) output_layer_norm: LayerNorm,
    /// Both LayerNorms' epsilon (burn keeps its own private).
    pub(crate) eps: f64,
}

impl BertLayer {
    /// Layer `i` of `keys.layers`, hidden width `h`, feed-forward width `m`.
    pub(crate) fn load(ckpt: &Checkpoint, keys: &LayerKeys, i: usize, h: usize, m: usize, eps: f64) -> Result<Self> {
        let k = |name: &str| format!("{}.{i}.{name}", keys.layers);
        Ok(Self {
            query: ckpt.linear(&k(keys.query), h, h)?,
            key: ckpt.linear(&k(keys.key), h, h)?,
            value: ckpt.linear(&k(keys.value), h, h)?,
            attention_output_dense: ckpt.linear(&k(keys.attention_output_dense), h, h)?,
            attention_output_layer_norm: ckpt.layer_norm(&k(keys.attention_output_layer_norm), h, eps)?,
            intermediate_dense: ckpt.linear(&k(keys.intermediate_dense), h, m)?,
            output_dense: ckpt.linear(&k(keys.output_dense), m, h)?,
            output_layer_norm: ckpt.layer_norm(&k(keys.output_layer_norm), h, eps)?,
            eps,
        })
    }

    /// The layer over every position, or with `first_only` its output at the first position
    /// alone, `[batch, 1, hidden]`: all a classification head reads from the last layer, for
    /// about a sixth of the layer's work (keys and values still cover every position).
    pub(crate) fn forward(
        &self,
        x: Tensor<3>,
        mask: &Tensor<4, burn::tensor::Bool>,
        heads: usize,
        act: Activation,
        first_only: bool,
    ) -> Tensor<3> {
        let (query, mask) = match first_only {
            true => (x.clone().narrow(1, 0, 1), mask.clone().narrow(2, 0, 1)),
            false => (x.clone(), mask.clone()),
        };
        let context = multi_head_attention(
            linear(&self.query, query.clone()),
            linear(&self.key, x.clone()),
            linear(&self.value, x),
            &mask,
            heads,
        );
        self.output(context, query, act)
    }

    /// The layer with `attend(query, key, value)` as its attention (MPNet adds a position bias).
    pub(crate) fn forward_with(
        &self,
        x: Tensor<3>,
        act: Activation,
        attend: impl FnOnce(Tensor<3>, Tensor<3>, Tensor<3>) -> Tensor<3>,
    ) -> Tensor<3> {
        let context = attend(
            linear(&self.query, x.clone()),
            linear(&self.key, x.clone()),
            linear(&self.value, x.clone()),
        );
        self.output(context, x, act)
    }

    /// `BertSelfOutput`, `BertIntermediate` and `BertOutput` after the attention.
    fn output(&self, context: Tensor<3>, residual: Tensor<3>, act: Activation) -> Tensor<3> {
        let attended = layer_norm(
            &self.attention_output_layer_norm,
            self.eps,
            dropout(linear(&self.attention_output_dense, context), Site::AttentionOutput) + residual,
        );
        let intermediate = act.forward_linear(&self.intermediate_dense, attended.clone());
        layer_norm(
            &self.output_layer_norm,
            self.eps,
            dropout(linear(&self.output_dense, intermediate), Site::FeedForwardOutput) + attended,
        )
    }
}

/// `BertModel` without the pooler: token embeddings out.
pub(crate) struct BertModel {
    pub(crate) config: BertConfig,
    embeddings: BertEmbeddings,
    /// Emptied when the layers run on the host kernels instead.
    pub(crate) layers: Vec<BertLayer>,
    pub(crate) act: Activation,
}

impl BertModel {
    pub(crate) fn load(ckpt: &Checkpoint, config: BertConfig) -> Result<Self> {
        if let Some(kind) = config.position_embedding_type.as_deref().filter(|k| *k != "absolute") {
            return Err(crate::EncoderError::InvalidArgument(format!(
                "position_embedding_type `{kind}` is not supported (only `absolute`)"
            )));
        }
        let (h, m, eps) = (config.hidden_size, config.intermediate_size, config.layer_norm_eps);
        let layers = (0..config.num_hidden_layers)
            .map(|i| BertLayer::load(ckpt, &BERT_LAYER_KEYS, i, h, m, eps))
            .collect::<Result<_>>()?;
        Ok(Self {
            embeddings: BertEmbeddings::load(ckpt, &config)?,
            layers,
            act: Activation::from_config(&config.hidden_act)?,
            config,
        })
    }

    /// The embedding block's output `[batch, seq, hidden]` (see [`Self::forward_at`] for
    /// `position_ids`).
    pub(crate) fn embed(
        &self,
        input_ids: Tensor<2, Int>,
        token_type_ids: Tensor<2, Int>,
        position_ids: Option<Tensor<2, Int>>,
    ) -> Tensor<3> {
        self.embeddings.forward(input_ids, token_type_ids, position_ids)
    }

    /// Last hidden state `[batch, seq, hidden]`, for `position_ids` `[batch, seq]` (RoBERTa
    /// numbers positions from `padding_idx + 1`; `None` is `0..seq`). With `first_only` the last layer
    /// computes the first position alone, `[batch, 1, hidden]`.
    pub(crate) fn forward_at(
        &self,
        input_ids: Tensor<2, Int>,
        token_type_ids: Tensor<2, Int>,
        position_ids: Option<Tensor<2, Int>>,
        attention_mask: &Tensor<2>,
        first_only: bool,
    ) -> Tensor<3> {
        let heads = self.config.num_attention_heads;
        let mask = padding_mask(attention_mask, heads);
        let mut x = self.embed(input_ids, token_type_ids, position_ids);
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, &mask, heads, self.act, first_only && i == last);
        }
        x
    }
}

/// `BertPooler` + the `classifier` of `BertForSequenceClassification`.
pub(crate) struct BertClassificationHead {
    pooler: Linear,
    classifier: Linear,
}

impl BertClassificationHead {
    pub(crate) fn load(ckpt: &Checkpoint, c: &BertConfig, num_labels: usize) -> Result<Self> {
        Self::load_named(ckpt, "pooler.dense", "classifier", c.hidden_size, num_labels)
    }

    /// The same dense → tanh → linear on the first token, stored as `{pooler}` and `{classifier}`.
    pub(crate) fn load_named(
        ckpt: &Checkpoint,
        pooler: &str,
        classifier: &str,
        hidden: usize,
        num_labels: usize,
    ) -> Result<Self> {
        Ok(Self {
            pooler: ckpt.linear(pooler, hidden, hidden)?,
            classifier: ckpt.linear(classifier, hidden, num_labels)?,
        })
    }

    /// Logits `[batch, num_labels]` from the `[CLS]` hidden state.
    pub(crate) fn forward(&self, hidden: Tensor<3>) -> Tensor<2> {
        let [batch, _, h] = hidden.dims();
        let cls = dropout(hidden.narrow(1, 0, 1).reshape([batch, h]), Site::ClassifierInput);
        let pooled = activation::tanh(self.pooler.forward(cls));
        self.classifier.forward(dropout(pooled, Site::Classifier))
    }
}

/// `BertLMPredictionHead`: transform (dense, act, LayerNorm), then the decoder tied to the word
/// embeddings plus its own bias.
pub(crate) struct BertLmHead {
    transform_dense: Linear,
    transform_layer_norm: LayerNorm,
    eps: f64,
    act: Activation,
    decoder: VocabProjection,
}

/// Where an LM head's blocks sit in a checkpoint.
pub(crate) struct LmHeadKeys {
    pub(crate) dense: &'static str,
    pub(crate) layer_norm: &'static str,
    /// `{decoder}.weight` (usually tied to the word embeddings) and `{decoder}.bias`.
    pub(crate) decoder: &'static str,
}

const BERT_LM_HEAD_KEYS: LmHeadKeys = LmHeadKeys {
    dense: "cls.predictions.transform.dense",
    layer_norm: "cls.predictions.transform.LayerNorm",
    decoder: "cls.predictions.decoder",
};

impl BertLmHead {
    pub(crate) fn load(ckpt: &Checkpoint, c: &BertConfig) -> Result<Self> {
        let act = Activation::from_config(&c.hidden_act)?;
        Self::load_named(
            ckpt,
            &BERT_LM_HEAD_KEYS,
            c.vocab_size,
            c.hidden_size,
            c.layer_norm_eps,
            act,
        )
    }

    /// The same dense → `act` → LayerNorm → decoder, stored under `keys`.
    pub(crate) fn load_named(
        ckpt: &Checkpoint,
        keys: &LmHeadKeys,
        vocab: usize,
        hidden: usize,
        eps: f64,
        act: Activation,
    ) -> Result<Self> {
        // Tied to the word embeddings in most checkpoints; KEY_RULES knows where to look.
        let decoder = ckpt.tensor2(&format!("{}.weight", keys.decoder), [vocab, hidden])?;
        Ok(Self {
            transform_dense: ckpt.linear(keys.dense, hidden, hidden)?,
            transform_layer_norm: ckpt.layer_norm(keys.layer_norm, hidden, eps)?,
            eps,
            act,
            decoder: VocabProjection::new(decoder, ckpt.tensor1(&format!("{}.bias", keys.decoder), vocab)?),
        })
    }
}

impl LmHead for BertLmHead {
    fn transform(&self, hidden: Tensor<3>) -> Tensor<3> {
        self.transform_layer_norm
            .forward(self.act.forward_linear(&self.transform_dense, hidden))
    }

    fn decoder(&self) -> &VocabProjection {
        &self.decoder
    }

    fn on_host(&self, dtype: Dtype) -> CpuLmHead {
        let (decoder, bias) = self.decoder.host_parts();
        CpuLmHead::new(
            CpuLinear::from_burn(&self.transform_dense, dtype),
            self.act,
            CpuLayerNorm::from_burn(&self.transform_layer_norm, self.eps),
            &decoder,
            &bias,
            dtype,
        )
    }
}
