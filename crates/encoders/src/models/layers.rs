//! Blocks shared by the transformer families: activations and multi-head self-attention.

use burn::nn::{LayerNorm, Linear};
use burn::tensor::activation;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor, TensorCreationOptions};

use super::cpu;
use super::dropout::{Site, active, dropout};
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

    /// `act(linear(x))`; on the CPU the exact GELU is fused with the bias add
    /// ([`cpu::linear_gelu`]), everywhere else it is burn's.
    pub(crate) fn forward_linear<const D: usize>(self, linear: &Linear, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Gelu if cpu::on_cpu(&x) => cpu::linear_gelu(linear, x),
            _ => self.forward(self::linear(linear, x)),
        }
    }

    pub(crate) fn forward<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            #[cfg(feature = "train")]
            Self::Gelu if cpu::autodiff::applies(&x) => cpu::autodiff::gelu(x),
            Self::Gelu => activation::gelu(x),
            Self::GeluTanh => activation::gelu_approximate(x),
            Self::Relu => activation::relu(x),
            Self::Silu => activation::silu(x),
            Self::Tanh => activation::tanh(x),
        }
    }
}

/// `linear(x)`; while fine-tuning on the CPU one op with its own backward, the bias add and its
/// gradient split over the rayon pool ([`cpu::autodiff::linear`]).
pub(crate) fn linear<const D: usize>(linear: &Linear, x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "train")]
    if let Some(bias) = linear.bias.as_ref().filter(|_| cpu::autodiff::applies(&x)) {
        return cpu::autodiff::linear(x, linear.weight.val(), bias.val());
    }
    linear.forward(x)
}

/// `layer_norm(x)`; while fine-tuning on the CPU it is one fused op with its own backward
/// ([`cpu::autodiff::layer_norm`]) rather than burn's dozen.
pub(crate) fn layer_norm<const D: usize>(norm: &LayerNorm, eps: f64, x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "train")]
    if let Some(beta) = norm.beta.as_ref().filter(|_| cpu::autodiff::applies(&x)) {
        return cpu::autodiff::layer_norm(x, norm.gamma.val(), beta.val(), eps);
    }
    let _ = eps;
    norm.forward(x)
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
/// Inputs and output are `[batch, seq, hidden]`; the query may cover fewer positions than the
/// keys (`mask` is then `[batch, heads, query seq, key seq]`).
pub(crate) fn multi_head_attention(
    query: Tensor<3>,
    key: Tensor<3>,
    value: Tensor<3>,
    mask: &Tensor<4, Bool>,
    num_heads: usize,
) -> Tensor<3> {
    let [batch, seq, hidden] = query.dims();
    let head_dim = hidden / num_heads;
    let split = |x: Tensor<3>| {
        let [batch, seq, _] = x.dims();
        x.reshape([batch, seq, num_heads, head_dim]).swap_dims(1, 2)
    };
    #[cfg(feature = "train")]
    if cpu::autodiff::applies(&query) {
        // The mask is a key-padding mask ([`padding_mask`]): the same for every head and query.
        let keys = key.dims()[1];
        let padding = mask.clone().narrow(1, 0, 1).narrow(2, 0, 1).reshape([batch, keys]);
        let keep: Vec<bool> = padding.into_data().iter::<bool>().map(|padded| !padded).collect();
        let scores = cpu::autodiff::attention_scores(query, key, num_heads);
        let probs = cpu::autodiff::masked_softmax(scores, (head_dim as f32).powf(-0.5), std::sync::Arc::new(keep));
        let probs = dropout(probs, Site::AttentionProbs);
        return cpu::autodiff::attention_context(probs, value);
    }
    let context = match active(Site::AttentionProbs) {
        true => attention_with_dropout(split(query), split(key), split(value), mask, None),
        false => attention(
            split(query),
            split(key),
            split(value),
            Some(mask.clone()),
            None,
            AttentionModuleOptions::default(),
        ),
    };
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
    let context = match active(Site::AttentionProbs) {
        true => attention_with_dropout(heads(query), heads(key), heads(value), mask, Some(bias)),
        false => attention(
            heads(query),
            heads(key),
            heads(value),
            Some(mask.clone()),
            Some(bias.clone()),
            AttentionModuleOptions::default(),
        ),
    };
    context.swap_dims(1, 2).reshape([batch, seq, hidden])
}

/// softmax(Q Kᵀ / √d + bias + mask) V over `[batch, heads, seq, head_dim]` inputs, with dropout on
/// the probabilities (burn's fused `attention` has no dropout): the training path where the fused
/// CPU ops do not apply.
fn attention_with_dropout(
    query: Tensor<4>,
    key: Tensor<4>,
    value: Tensor<4>,
    mask: &Tensor<4, Bool>,
    bias: Option<&Tensor<4>>,
) -> Tensor<4> {
    let head_dim = query.dims()[3];
    let mut scores = query
        .matmul(key.swap_dims(2, 3))
        .mul_scalar((head_dim as f32).powf(-0.5));
    if let Some(bias) = bias {
        scores = scores + bias.clone();
    }
    let probs = activation::softmax(scores.mask_fill(mask.clone(), f32::NEG_INFINITY), 3);
    dropout(probs, Site::AttentionProbs).matmul(value)
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
        if embeddings.is_autodiff() {
            // Training: the transpose stays in the graph, so the tied word embeddings receive
            // the decoder's gradient too.
            return Self {
                weight: embeddings.transpose(),
                bias,
            };
        }
        let options = TensorCreationOptions::new(embeddings.device()).with_dtype(embeddings.dtype());
        Self {
            weight: Tensor::from_data(embeddings.transpose().into_data(), options),
            bias,
        }
    }

    /// The decoder for the host kernels: `[hidden, vocab]` row-major, and the bias.
    pub(crate) fn host_parts(&self) -> (Vec<f32>, Vec<f32>) {
        (
            cpu::linear::host(self.weight.clone()),
            cpu::linear::host(self.bias.clone()),
        )
    }

    /// `max_t (x[t] · W + b)` over the unmasked positions `t`: `[batch, seq, hidden]` →
    /// `[batch, vocab]`. The bias is added after the maximum (adding a constant commutes with
    /// it), and the `[batch, seq, vocab]` logits are never held whole: they are produced a slice
    /// of positions at a time and folded into a running maximum.
    pub(crate) fn max_over_positions(&self, x: Tensor<3>, attention_mask: &Tensor<2>) -> Tensor<2> {
        // 256 rows of a 30k vocabulary: a 31 MB slice, large for the matmul, small for the allocator.
        const ROWS_PER_SLICE: usize = 256;
        let batch = x.dims()[0];
        let vocab = self.bias.dims()[0];
        let step = (ROWS_PER_SLICE / batch.max(1)).max(1);
        let max_logits = if cpu::on_cpu(&x) {
            cpu::masked_max_matmul(x, &self.weight, attention_mask, step)
        } else {
            masked_max_matmul(x, &self.weight, attention_mask, step)
        };
        max_logits + self.bias.clone().reshape([1, vocab])
    }
}

/// [`cpu::masked_max_matmul`] in burn tensor operations, for the GPU backends.
fn masked_max_matmul(x: Tensor<3>, weight: &Tensor<2>, attention_mask: &Tensor<2>, step: usize) -> Tensor<2> {
    let [batch, seq, hidden] = x.dims();
    let vocab = weight.dims()[1];
    let mut running: Option<Tensor<2>> = None;
    for start in (0..seq).step_by(step) {
        let len = step.min(seq - start);
        let rows = x.clone().narrow(1, start, len).reshape([batch * len, hidden]);
        let logits = rows.matmul(weight.clone()).reshape([batch, len, vocab]);
        // Padded positions drop to -inf so they never win the maximum (a filled constant rather
        // than an added penalty, which would overflow half precision).
        let padding = attention_mask
            .clone()
            .narrow(1, start, len)
            .equal_elem(0.0)
            .reshape([batch, len, 1])
            .expand([batch, len, vocab]);
        let slice_max = logits
            .mask_fill(padding, f32::NEG_INFINITY)
            .max_dim(1)
            .reshape([batch, vocab]);
        running = Some(match running {
            Some(m) => m.max_pair(slice_max),
            None => slice_max,
        });
    }
    running.expect("a tokenized text has at least one token")
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, TensorData};

    use super::*;

    #[test]
    fn attention_with_dropout_is_burns_attention_when_nothing_drops() {
        use crate::models::dropout::{DropoutRates, scope};
        let device = burn::tensor::Device::flex();
        let normal = |shape: [usize; 3]| Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let (q, k, v) = (normal([2, 5, 8]), normal([2, 5, 8]), normal([2, 5, 8]));
        let bias = Tensor::<4>::random([2, 2, 5, 5], Distribution::Normal(0.0, 1.0), &device);
        let lengths = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 1., 1., 1., 1., 1., 1., 0., 0., 0.], [2, 5]),
            &device,
        );
        let mask = padding_mask(&lengths, 2);
        // A rate so small that no element drops, but the dropout path runs.
        let rates = DropoutRates {
            attention_probs: 1e-9,
            ..DropoutRates::default()
        };
        let plain = multi_head_attention(q.clone(), k.clone(), v.clone(), &mask, 2);
        let dropped = scope(rates, 1, || {
            multi_head_attention(q.clone(), k.clone(), v.clone(), &mask, 2)
        });
        plain
            .into_data()
            .assert_approx_eq::<f32>(&dropped.into_data(), burn::tensor::Tolerance::absolute(1e-5));
        let plain = biased_multi_head_attention(q.clone(), k.clone(), v.clone(), &mask, &bias, 2);
        let dropped = scope(rates, 1, || biased_multi_head_attention(q, k, v, &mask, &bias, 2));
        plain
            .into_data()
            .assert_approx_eq::<f32>(&dropped.into_data(), burn::tensor::Tolerance::absolute(1e-5));
    }

    #[test]
    fn cpu_and_tensor_masked_maxima_agree() {
        let device = burn::tensor::Device::flex();
        let x = Tensor::<3>::random([3, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let weight = Tensor::<2>::random([8, 50], Distribution::Normal(0.0, 1.0), &device);
        let mask: Vec<f32> = [7, 4, 1]
            .iter()
            .flat_map(|&n| (0..7).map(move |t| f32::from(u8::from(t < n))))
            .collect();
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [3, 7]), &device);
        for step in [1, 3, 7] {
            let fast = cpu::masked_max_matmul(x.clone(), &weight, &mask, step);
            let plain = masked_max_matmul(x.clone(), &weight, &mask, step);
            assert_eq!(fast.into_data(), plain.into_data(), "step {step}");
        }
    }
}
