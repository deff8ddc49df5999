//! BERT (`BertModel`, `BertForSequenceClassification`, `BertForMaskedLM`), block for block as in
//! `transformers/models/bert/modeling_bert.py`. Struct and field names follow the checkpoint keys.

use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::{Int, Tensor, activation};
use serde::Deserialize;

use super::LmHead;
use super::layers::{Activation, VocabProjection, multi_head_attention, padding_mask};
use crate::checkpoint::Checkpoint;
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

fn default_hidden_act() -> String {
    "gelu".into()
}
fn default_type_vocab_size() -> usize {
    2
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}

/// `BertEmbeddings`: word + position + token type, then LayerNorm.
pub(crate) struct BertEmbeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    token_type_embeddings: Embedding,
    layer_norm: LayerNorm,
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
        })
    }

    fn forward(&self, input_ids: Tensor<2, Int>, token_type_ids: Tensor<2, Int>) -> Tensor<3> {
        let [batch, seq] = input_ids.dims();
        let device = input_ids.device();
        let position_ids = Tensor::<1, Int>::arange(0..seq as i64, &device).reshape([1, seq]);
        let positions = self.position_embeddings.forward(position_ids);
        let embeddings = self.word_embeddings.forward(input_ids)
            + self.token_type_embeddings.forward(token_type_ids)
            + positions.expand([batch, seq, self.word_embeddings.weight.dims()[1]]);
        self.layer_norm.forward(embeddings)
    }
}

/// `BertLayer`: `BertAttention` (self-attention + `BertSelfOutput`), `BertIntermediate`, `BertOutput`.
struct BertLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_output_dense: Linear,
    attention_output_layer_norm: LayerNorm,
    intermediate_dense: Linear,
    output_dense: Linear,
    output_layer_norm: LayerNorm,
}

impl BertLayer {
    fn load(ckpt: &Checkpoint, c: &BertConfig, i: usize) -> Result<Self> {
        let p = format!("encoder.layer.{i}");
        let (h, m, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps);
        Ok(Self {
            query: ckpt.linear(&format!("{p}.attention.self.query"), h, h)?,
            key: ckpt.linear(&format!("{p}.attention.self.key"), h, h)?,
            value: ckpt.linear(&format!("{p}.attention.self.value"), h, h)?,
            attention_output_dense: ckpt.linear(&format!("{p}.attention.output.dense"), h, h)?,
            attention_output_layer_norm: ckpt.layer_norm(&format!("{p}.attention.output.LayerNorm"), h, eps)?,
            intermediate_dense: ckpt.linear(&format!("{p}.intermediate.dense"), h, m)?,
            output_dense: ckpt.linear(&format!("{p}.output.dense"), m, h)?,
            output_layer_norm: ckpt.layer_norm(&format!("{p}.output.LayerNorm"), h, eps)?,
        })
    }

    fn forward(&self, x: Tensor<3>, mask: &Tensor<4, burn::tensor::Bool>, heads: usize, act: Activation) -> Tensor<3> {
        let context = multi_head_attention(
            self.query.forward(x.clone()),
            self.key.forward(x.clone()),
            self.value.forward(x.clone()),
            mask,
            heads,
        );
        let attended = self
            .attention_output_layer_norm
            .forward(self.attention_output_dense.forward(context) + x);
        let intermediate = act.forward_linear(&self.intermediate_dense, attended.clone());
        self.output_layer_norm
            .forward(self.output_dense.forward(intermediate) + attended)
    }
}

/// `BertModel` without the pooler: token embeddings out.
pub(crate) struct BertModel {
    pub(crate) config: BertConfig,
    embeddings: BertEmbeddings,
    layers: Vec<BertLayer>,
    act: Activation,
}

impl BertModel {
    pub(crate) fn load(ckpt: &Checkpoint, config: BertConfig) -> Result<Self> {
        if let Some(kind) = config.position_embedding_type.as_deref().filter(|k| *k != "absolute") {
            return Err(crate::EncoderError::InvalidArgument(format!(
                "position_embedding_type `{kind}` is not supported (only `absolute`)"
            )));
        }
        let layers = (0..config.num_hidden_layers)
            .map(|i| BertLayer::load(ckpt, &config, i))
            .collect::<Result<_>>()?;
        Ok(Self {
            embeddings: BertEmbeddings::load(ckpt, &config)?,
            layers,
            act: Activation::from_config(&config.hidden_act)?,
            config,
        })
    }

    /// Last hidden state `[batch, seq, hidden]`.
    pub(crate) fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        token_type_ids: Tensor<2, Int>,
        attention_mask: &Tensor<2>,
    ) -> Tensor<3> {
        let heads = self.config.num_attention_heads;
        let mask = padding_mask(attention_mask, heads);
        let mut x = self.embeddings.forward(input_ids, token_type_ids);
        for layer in &self.layers {
            x = layer.forward(x, &mask, heads, self.act);
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
        Ok(Self {
            pooler: ckpt.linear("pooler.dense", c.hidden_size, c.hidden_size)?,
            classifier: ckpt.linear("classifier", c.hidden_size, num_labels)?,
        })
    }

    /// Logits `[batch, num_labels]` from the `[CLS]` hidden state.
    pub(crate) fn forward(&self, hidden: Tensor<3>) -> Tensor<2> {
        let [batch, _, h] = hidden.dims();
        let cls = hidden.narrow(1, 0, 1).reshape([batch, h]);
        self.classifier.forward(activation::tanh(self.pooler.forward(cls)))
    }
}

/// `BertLMPredictionHead`: transform (dense, act, LayerNorm), then the decoder tied to the word
/// embeddings plus its own bias.
pub(crate) struct BertLmHead {
    transform_dense: Linear,
    transform_layer_norm: LayerNorm,
    act: Activation,
    decoder: VocabProjection,
}

impl BertLmHead {
    pub(crate) fn load(ckpt: &Checkpoint, c: &BertConfig) -> Result<Self> {
        // Tied to the word embeddings in most checkpoints; KEY_RULES knows where to look.
        let decoder = ckpt.tensor2("cls.predictions.decoder.weight", [c.vocab_size, c.hidden_size])?;
        Ok(Self {
            transform_dense: ckpt.linear("cls.predictions.transform.dense", c.hidden_size, c.hidden_size)?,
            transform_layer_norm: ckpt.layer_norm(
                "cls.predictions.transform.LayerNorm",
                c.hidden_size,
                c.layer_norm_eps,
            )?,
            act: Activation::from_config(&c.hidden_act)?,
            decoder: VocabProjection::new(decoder, ckpt.tensor1("cls.predictions.decoder.bias", c.vocab_size)?),
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
}
