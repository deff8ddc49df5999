//! Blocks shared by the transformer families: activations and multi-head self-attention.

use burn::tensor::activation;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};

use crate::error::{EncoderError, Result};

/// The `hidden_act` / `activation` values of Hugging Face configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// `gelu`: the exact, erf-based GELU.
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`: the tanh approximation.
    GeluTanh,
    Relu,
    Silu,
    Tanh,
}

impl Activation {
    pub(crate) fn from_config(name: &str) -> Result<Self> {
        Ok(match name {
            "gelu" => Self::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Self::GeluTanh,
            "relu" => Self::Relu,
            "silu" | "swish" => Self::Silu,
            "tanh" => Self::Tanh,
            other => {
                return Err(EncoderError::InvalidArgument(format!(
                    "unsupported hidden_act `{other}` (supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu, tanh)"
                )));
            }
        })
    }

    pub(crate) fn forward<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Gelu => activation::gelu(x),
            Self::GeluTanh => activation::gelu_approximate(x),
            Self::Relu => activation::relu(x),
            Self::Silu => activation::silu(x),
            Self::Tanh => activation::tanh(x),
        }
    }
}

/// `true` where a key position is padding, shaped for [`multi_head_attention`].
pub(crate) fn padding_mask(attention_mask: &Tensor<2>, num_heads: usize) -> Tensor<4, Bool> {
    let [batch, seq] = attention_mask.dims();
    attention_mask
        .clone()
        .equal_elem(0.0)
        .reshape([batch, 1, 1, seq])
        .expand([batch, num_heads, seq, seq])
}

/// softmax(Q Kᵀ / √d + mask) V over `num_heads` heads, as in `BertSelfAttention.forward`.
/// Inputs and output are `[batch, seq, hidden]`.
pub(crate) fn multi_head_attention(
    query: Tensor<3>,
    key: Tensor<3>,
    value: Tensor<3>,
    mask: &Tensor<4, Bool>,
    num_heads: usize,
) -> Tensor<3> {
    let [batch, seq, hidden] = query.dims();
    let head_dim = hidden / num_heads;
    let split = |x: Tensor<3>| x.reshape([batch, seq, num_heads, head_dim]).swap_dims(1, 2);
    let context = attention(
        split(query),
        split(key),
        split(value),
        Some(mask.clone()),
        None,
        AttentionModuleOptions::default(),
    );
    context.swap_dims(1, 2).reshape([batch, seq, hidden])
}

/// [`multi_head_attention`] with an additive bias on the scores, softmax(Q Kᵀ / √d + bias + mask) V,
/// as in `MPNetSelfAttention.forward`. `bias` is `[batch, heads, seq, seq]`.
pub(crate) fn biased_multi_head_attention(
    query: Tensor<3>,
    key: Tensor<3>,
    value: Tensor<3>,
    mask: &Tensor<4, Bool>,
    bias: &Tensor<4>,
    num_heads: usize,
) -> Tensor<3> {
    let [batch, seq, hidden] = query.dims();
    let heads = |x: Tensor<3>| x.reshape([batch, seq, num_heads, hidden / num_heads]).swap_dims(1, 2);
    attention(
        heads(query),
        heads(key),
        heads(value),
        Some(mask.clone()),
        Some(bias.clone()),
        AttentionModuleOptions::default(),
    )
    .swap_dims(1, 2)
    .reshape([batch, seq, hidden])
}

/// The vocabulary projection of a masked-LM head: `x · Eᵀ + b`, with `E` usually the word
/// embeddings (tied weights).
pub(crate) struct VocabProjection {
    /// `[hidden, vocab]`, materialised once so every batch multiplies a contiguous matrix.
    weight: Tensor<2>,
    bias: Tensor<1>,
}

impl VocabProjection {
    /// `embeddings` is `[vocab, hidden]` as stored in checkpoints.
    pub(crate) fn new(embeddings: Tensor<2>, bias: Tensor<1>) -> Self {
        let device = embeddings.device();
        Self {
            weight: Tensor::from_data(embeddings.transpose().into_data(), &device),
            bias,
        }
    }

    /// Logits `[batch, seq, vocab]` for `[batch, seq, hidden]`.
    pub(crate) fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [batch, seq, hidden] = x.dims();
        let vocab = self.bias.dims()[0];
        let logits = x.reshape([batch * seq, hidden]).matmul(self.weight.clone());
        (logits + self.bias.clone().reshape([1, vocab])).reshape([batch, seq, vocab])
    }
}
