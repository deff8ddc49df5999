//! MPNet (`MPNetModel`, `MPNetForSequenceClassification`, `MPNetForMaskedLM`) as in
//! `transformers/models/mpnet/modeling_mpnet.py`.
//!
//! An MPNet layer is a BERT layer under other names (`MPNET_LAYER_KEYS`) whose attention scores
//! get a learned relative-position bias (`MPNetEncoder.compute_position_bias`), computed once per
//! forward pass and shared by every layer. Positions count from `padding_idx + 1` as in RoBERTa,
//! and the heads are RoBERTa's.

use burn::nn::{Embedding, LayerNorm};
use burn::tensor::{Int, Tensor, TensorData};
use serde::Deserialize;

use super::bert::{BertLayer, LayerKeys, default_hidden_act, default_layer_norm_eps};
use super::cpu::attention::RelativeBias;
use super::cpu::linear::host;
use super::dropout::{Site, dropout};
use super::layers::{Activation, biased_multi_head_attention, padding_mask};
use super::roberta::{position_ids, usable_positions};
use crate::checkpoint::Checkpoint;
use crate::error::Result;

/// `MPNetEmbeddings.padding_idx`: fixed in the modeling code, whatever `pad_token_id` says.
const PADDING_IDX: usize = 1;
/// `compute_position_bias` always buckets with its default of 32, independently of
/// `relative_attention_num_buckets` (which only sizes the bias table).
const NUM_BUCKETS: usize = 32;
/// `relative_position_bucket`'s `max_distance`: farther distances share the last bucket.
const MAX_DISTANCE: usize = 128;

/// `config.json` of an MPNet model, field for field (only what inference needs).
#[derive(Debug, Clone, Deserialize)]
pub struct MPNetConfig {
    /// Size of the WordPiece vocabulary.
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Number of `MPNetLayer`s.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward block.
    pub intermediate_size: usize,
    /// Activation of the feed-forward block.
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    /// Length of the learned position table, including the `padding_idx + 1` unused rows.
    pub max_position_embeddings: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Rows of the relative-position bias table (`encoder.relative_attention_bias`).
    #[serde(default = "default_relative_attention_num_buckets")]
    pub relative_attention_num_buckets: usize,
}

fn default_relative_attention_num_buckets() -> usize {
    32
}

/// MPNet's names for the blocks of `encoder.layer.{i}`.
pub(crate) const MPNET_LAYER_KEYS: LayerKeys = LayerKeys {
    layers: "encoder.layer",
    query: "attention.attn.q",
    key: "attention.attn.k",
    value: "attention.attn.v",
    attention_output_dense: "attention.attn.o",
    attention_output_layer_norm: "attention.LayerNorm",
    intermediate_dense: "intermediate.dense",
    output_dense: "output.dense",
    output_layer_norm: "output.LayerNorm",
};

/// `MPNetEncoder.relative_position_bucket` for `relative_position` = key index − query index:
/// one half of the buckets per direction, exact below `max_exact`, logarithmic up to
/// `MAX_DISTANCE`. The logarithm is taken in f32, as torch does, so bucket edges agree.
pub(crate) fn relative_position_bucket(relative_position: i64) -> usize {
    let half = NUM_BUCKETS / 2;
    let n = -relative_position;
    let direction = if n < 0 { half } else { 0 };
    let n = n.unsigned_abs() as usize;
    let max_exact = half / 2;
    if n < max_exact {
        return direction + n;
    }
    let scale = (MAX_DISTANCE as f64 / max_exact as f64).ln() as f32;
    let log_ratio = (n as f32 / max_exact as f32).ln() / scale * (half - max_exact) as f32;
    direction + (max_exact + log_ratio as usize).min(half - 1)
}

/// `MPNetEmbeddings`: word + position (from `padding_idx + 1`), then LayerNorm; no token types.
struct MPNetEmbeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    layer_norm: LayerNorm,
}

impl MPNetEmbeddings {
    fn load(ckpt: &Checkpoint, c: &MPNetConfig) -> Result<Self> {
        let h = c.hidden_size;
        Ok(Self {
            word_embeddings: ckpt.embedding("embeddings.word_embeddings.weight", c.vocab_size, h)?,
            position_embeddings: ckpt.embedding(
                "embeddings.position_embeddings.weight",
                c.max_position_embeddings,
                h,
            )?,
            layer_norm: ckpt.layer_norm("embeddings.LayerNorm", h, c.layer_norm_eps)?,
        })
    }

    fn forward(&self, input_ids: Tensor<2, Int>) -> Tensor<3> {
        let positions = self.position_embeddings.forward(position_ids(&input_ids, PADDING_IDX));
        let embeddings = self
            .layer_norm
            .forward(self.word_embeddings.forward(input_ids) + positions);
        dropout(embeddings, Site::Embeddings)
    }
}

/// `MPNetModel` without the pooler: `MPNetEmbeddings` and `MPNetEncoder`.
pub(crate) struct MPNetModel {
    pub(crate) config: MPNetConfig,
    embeddings: MPNetEmbeddings,
    /// Emptied when the layers run on the host kernels instead.
    pub(crate) layers: Vec<BertLayer>,
    /// `encoder.relative_attention_bias`: `[buckets, heads]`.
    relative_attention_bias: Embedding,
    pub(crate) act: Activation,
}

impl MPNetModel {
    pub(crate) fn load(ckpt: &Checkpoint, config: MPNetConfig) -> Result<Self> {
        let (h, m, eps) = (config.hidden_size, config.intermediate_size, config.layer_norm_eps);
        let layers = (0..config.num_hidden_layers)
            .map(|i| BertLayer::load(ckpt, &MPNET_LAYER_KEYS, i, h, m, eps))
            .collect::<Result<_>>()?;
        Ok(Self {
            embeddings: MPNetEmbeddings::load(ckpt, &config)?,
            layers,
            relative_attention_bias: ckpt.embedding(
                "encoder.relative_attention_bias.weight",
                config.relative_attention_num_buckets,
                config.num_attention_heads,
            )?,
            act: Activation::from_config(&config.hidden_act)?,
            config,
        })
    }

    /// Longest sequence the position table holds: positions start at `padding_idx + 1`.
    pub(crate) fn max_positions(&self) -> usize {
        usable_positions(self.config.max_position_embeddings, PADDING_IDX)
    }

    /// `MPNetEncoder.compute_position_bias`: the bias of every (query, key) pair, looked up by
    /// bucket, `[batch, heads, seq, seq]`.
    fn position_bias(&self, batch: usize, seq: usize) -> Tensor<4> {
        let buckets: Vec<i64> = (0..seq as i64)
            .flat_map(|query| (0..seq as i64).map(move |key| relative_position_bucket(key - query) as i64))
            .collect();
        let device = self.relative_attention_bias.weight.device();
        let buckets = Tensor::<2, Int>::from_data(TensorData::new(buckets, [seq, seq]), &device);
        let heads = self.config.num_attention_heads;
        self.relative_attention_bias
            .forward(buckets)
            .permute([2, 0, 1])
            .reshape([1, heads, seq, seq])
            .expand([batch, heads, seq, seq])
    }

    /// Last hidden state `[batch, seq, hidden]`.
    /// The embedding block's output `[batch, seq, hidden]`.
    pub(crate) fn embed(&self, input_ids: Tensor<2, Int>) -> Tensor<3> {
        self.embeddings.forward(input_ids)
    }

    /// The relative-position bias for the host attention: the `[buckets, heads]` table and
    /// the bucketing.
    pub(crate) fn relative_bias(&self) -> RelativeBias {
        RelativeBias {
            table: host(self.relative_attention_bias.weight.val()),
            heads: self.config.num_attention_heads,
            bucket: relative_position_bucket,
        }
    }

    pub(crate) fn forward(&self, input_ids: Tensor<2, Int>, attention_mask: &Tensor<2>) -> Tensor<3> {
        let [batch, seq] = input_ids.dims();
        let heads = self.config.num_attention_heads;
        let mask = padding_mask(attention_mask, heads);
        let bias = self.position_bias(batch, seq);
        let mut x = self.embeddings.forward(input_ids);
        for layer in &self.layers {
            x = layer.forward_with(x, self.act, |q, k, v| {
                biased_multi_head_attention(q, k, v, &mask, &bias, heads)
            });
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_transformers_from_minus_300_to_300() {
        // `relative_position_bucket(torch.arange(-300, 301))`, written by generate_mpnet.py.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/mpnet-st-mean-norm/golden.json"
        );
        let golden: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let want: Vec<u64> = golden["relative_position_bucket"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_u64().unwrap())
            .collect();
        let got: Vec<u64> = (-300..=300).map(|r| relative_position_bucket(r) as u64).collect();
        assert_eq!(got, want);
    }
}
