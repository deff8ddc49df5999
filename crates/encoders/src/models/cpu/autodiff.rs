//! Fused CPU ops with hand-written backward passes, for fine-tuning on burn's autodiff over
//! `flex`.
//!
//! Under autodiff, burn builds LayerNorm and softmax out of a dozen elementwise ops each, and
//! `flex` runs every elementwise op (GELU's `erf` too) on the calling thread alone while the rayon
//! workers wait for the next matrix product: `perf` on `train_speed` showed the main thread
//! busy with elementwise work for about 40 % of a step's wall time. The ops here (exact GELU,
//! LayerNorm, the attention softmax with its padding mask, Linear's bias add and bias gradient
//! around flex's matrix products) each make one pass forward and one backward, split over the
//! rayon pool, with the vectorised `erfc` and `exp` of the inference kernels. They register their
//! own backward step on the autodiff graph, so the gradients flowing into and out of them are
//! burn's.
//!
//! [`applies`] tells the model code when to take them: an f32 tensor on the autodiff device over
//! `flex`. Everything else (inference, the GPU backends) keeps burn's ops.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::{Autodiff, Flex};
use burn::backend::{BackendTypes, TensorMetadata};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::{erfc_abs, exp, gelu_row};

type Ad = Autodiff<Flex>;

/// Elements handed to one rayon task by the elementwise ops.
const ELEMENTS_PER_TASK: usize = 16 * 1024;

/// `true` for an f32 tensor on the autodiff device over `flex`, where the fused ops apply.
pub(crate) fn applies<const D: usize>(t: &Tensor<D>) -> bool {
    // An autodiff device over flex compares equal to flex itself.
    t.is_autodiff() && t.dtype() == DType::F32 && t.device() == burn::tensor::Device::flex()
}

fn primitive<const D: usize>(t: Tensor<D>) -> <Ad as BackendTypes>::FloatTensorPrimitive {
    t.try_into_primitive::<Ad>()
        .expect("fused autodiff ops are called only where `applies` holds")
}

/// The f32 values of `t`, row-major (copied only when `t` is a strided view).
fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(v) => std::borrow::Cow::Borrowed(v),
        None => std::borrow::Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("a contiguous copy has a slice")
                .to_vec(),
        ),
    }
}

fn tensor(values: Vec<f32>, shape: burn::tensor::Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `x · W + b` for `x` `[.., in]`, `W` `[in, out]` (burn's `Linear` layout) and `b` `[out]`: flex's
/// matrix products forward and backward (`dx = dy · Wᵀ`, `dW = xᵀ · dy`), with the bias added
/// and its gradient `db = Σ dy` summed over the rayon pool.
pub(crate) fn linear<const D: usize>(x: Tensor<D>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<D> {
    #[derive(Debug)]
    struct LinearBackward;

    impl Backward<Flex, 3> for LinearBackward {
        /// The input and the weight.
        type State = (FlexTensor, FlexTensor);

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let (x, weight) = ops.state;
            let grad = grads.consume::<Flex>(&ops.node);
            let [d_in, d_out] = [weight.shape()[0], weight.shape()[1]];
            let rows = grad.shape().num_elements() / d_out;
            let dy = grad.reshape([rows, d_out].into());
            let [x_node, weight_node, bias_node] = ops.parents;
            if let Some(node) = bias_node {
                grads.register::<Flex>(node.id, tensor(column_sums(&values(&dy), d_out), [d_out].into()));
            }
            if let Some(node) = weight_node {
                let x = x.reshape([rows, d_in].into());
                grads.register::<Flex>(node.id, Flex::float_matmul(x.transpose(0, 1), dy.clone()));
            }
            if let Some(node) = x_node {
                let dx = Flex::float_matmul(dy, weight.transpose(0, 1));
                grads.register::<Flex>(node.id, dx.reshape(x.shape()));
            }
        }
    }

    let (x, weight, bias) = (primitive(x), primitive(weight), primitive(bias));
    let input = x.primitive().clone();
    let w = weight.primitive().clone();
    let mut shape = input.shape();
    let [d_in, d_out] = [w.shape()[0], w.shape()[1]];
    let rows = shape.num_elements() / d_in;
    let mut out = Flex::float_matmul(input.reshape([rows, d_in].into()), w.clone());
    {
        let b = values(bias.primitive());
        let rows_per_task = (ELEMENTS_PER_TASK / d_out).max(1);
        out.storage_mut::<f32>()
            .par_chunks_mut(rows_per_task * d_out)
            .for_each(|block| {
                for row in block.chunks_exact_mut(d_out) {
                    row.iter_mut().zip(b.iter()).for_each(|(v, b)| *v += b);
                }
            });
    }
    shape[D - 1] = d_out;
    let out = out.reshape(shape);
    let y = match LinearBackward
        .prepare::<NoCheckpointing>([x.node(), weight.node(), bias.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((input, w), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive::<Ad>(y)
}

/// The sums of the columns of `m` `[rows, cols]`.
fn column_sums(m: &[f32], cols: usize) -> Vec<f32> {
    let rows_per_task = (ELEMENTS_PER_TASK / cols).max(1);
    m.par_chunks(rows_per_task * cols)
        .map(|block| {
            let mut sums = vec![0.0f32; cols];
            for row in block.chunks_exact(cols) {
                sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            }
            sums
        })
        .reduce(
            || vec![0.0f32; cols],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(s, v)| *s += v);
                a
            },
        )
}

/// The exact GELU, `x/2 · (1 + erf(x/√2))`.
pub(crate) fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[derive(Debug)]
    struct GeluBackward;

    impl Backward<Flex, 1> for GeluBackward {
        /// The input.
        type State = FlexTensor;

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let x = ops.state;
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
                let shape = grad.shape();
                let mut dx = values(&grad).into_owned();
                let x = values(&x);
                dx.par_chunks_mut(ELEMENTS_PER_TASK)
                    .zip(x.par_chunks(ELEMENTS_PER_TASK))
                    .for_each(|(g, x)| gelu_grad_row(g, x));
                tensor(dx, shape)
            });
        }
    }

    let x = primitive(x);
    let input = x.primitive().clone();
    let shape = input.shape();
    let mut out = values(&input).into_owned();
    out.par_chunks_mut(ELEMENTS_PER_TASK).for_each(gelu_row);
    let out = tensor(out, shape);
    let y = match GeluBackward
        .prepare::<NoCheckpointing>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(input, out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive::<Ad>(y)
}

/// `grad ← grad · gelu'(x)`, with `gelu'(x) = Φ(x) + x·φ(x)`.
fn gelu_grad_row(grad: &mut [f32], x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F, checked just above.
        return unsafe { gelu_grad_avx512(grad, x) };
    } else if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        return unsafe { gelu_grad_avx2(grad, x) };
    }
    gelu_grad_portable(grad, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gelu_grad_avx512(grad: &mut [f32], x: &[f32]) {
    gelu_grad_portable(grad, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_grad_avx2(grad: &mut [f32], x: &[f32]) {
    gelu_grad_portable(grad, x)
}

#[inline(always)]
fn gelu_grad_portable(grad: &mut [f32], x: &[f32]) {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    for (g, &x) in grad.iter_mut().zip(x) {
        let z = x * std::f32::consts::FRAC_1_SQRT_2;
        let e = erfc_abs(z);
        let cdf = 0.5 * if x >= 0.0 { 2.0 - e } else { e };
        let pdf = INV_SQRT_2PI * exp(-0.5 * x * x);
        *g *= cdf + x * pdf;
    }
}

/// LayerNorm over the last dimension: `(x - mean) / √(var + eps) · gamma + beta`, as
/// `torch.nn.LayerNorm` (biased variance).
pub(crate) fn layer_norm<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, beta: Tensor<1>, eps: f64) -> Tensor<D> {
    /// What the backward pass needs: the normalised input, `1/σ` per row, and `gamma`.
    #[derive(Debug, Clone)]
    struct State {
        normalized: Arc<Vec<f32>>,
        inv_std: Arc<Vec<f32>>,
        gamma: Arc<Vec<f32>>,
    }

    #[derive(Debug)]
    struct LayerNormBackward;

    impl Backward<Flex, 3> for LayerNormBackward {
        type State = State;

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let State {
                normalized,
                inv_std,
                gamma,
            } = ops.state;
            let grad = grads.consume::<Flex>(&ops.node);
            let shape = grad.shape();
            let dy = values(&grad);
            let width = gamma.len();
            let rows_per_task = (ELEMENTS_PER_TASK / width).max(1);
            let [x_node, gamma_node, beta_node] = ops.parents;
            // The input gradient row by row, and per task its share of Σ dy·x̂ and Σ dy.
            let mut dx = vec![0.0f32; dy.len()];
            let (dgamma, dbeta) = dx
                .par_chunks_mut(rows_per_task * width)
                .zip(dy.par_chunks(rows_per_task * width))
                .zip(normalized.par_chunks(rows_per_task * width))
                .zip(inv_std.par_chunks(rows_per_task))
                .map(|(((dx, dy), xhat), inv_std)| {
                    let (mut dgamma, mut dbeta) = (vec![0.0f32; width], vec![0.0f32; width]);
                    let rows = dx
                        .chunks_exact_mut(width)
                        .zip(dy.chunks_exact(width))
                        .zip(xhat.chunks_exact(width));
                    for (((dx, dy), xhat), inv_std) in rows.zip(inv_std) {
                        let (mut sum_g, mut sum_gx) = (0.0f32, 0.0f32);
                        for i in 0..width {
                            dgamma[i] += dy[i] * xhat[i];
                            dbeta[i] += dy[i];
                            let g = dy[i] * gamma[i];
                            sum_g += g;
                            sum_gx += g * xhat[i];
                        }
                        let (mean_g, mean_gx) = (sum_g / width as f32, sum_gx / width as f32);
                        for i in 0..width {
                            dx[i] = inv_std * (dy[i] * gamma[i] - mean_g - xhat[i] * mean_gx);
                        }
                    }
                    (dgamma, dbeta)
                })
                .reduce(
                    || (vec![0.0f32; width], vec![0.0f32; width]),
                    |(mut g, mut b), (g2, b2)| {
                        g.iter_mut().zip(&g2).for_each(|(s, v)| *s += v);
                        b.iter_mut().zip(&b2).for_each(|(s, v)| *s += v);
                        (g, b)
                    },
                );
            if let Some(node) = x_node {
                grads.register::<Flex>(node.id, tensor(dx, shape));
            }
            if let Some(node) = gamma_node {
                grads.register::<Flex>(node.id, tensor(dgamma, [width].into()));
            }
            if let Some(node) = beta_node {
                grads.register::<Flex>(node.id, tensor(dbeta, [width].into()));
            }
        }
    }

    let (x, gamma, beta) = (primitive(x), primitive(gamma), primitive(beta));
    let shape = x.primitive().shape();
    let input = values(x.primitive());
    let gamma_values = values(gamma.primitive()).into_owned();
    let beta_values = values(beta.primitive());
    let width = gamma_values.len();
    let rows = input.len() / width;
    let rows_per_task = (ELEMENTS_PER_TASK / width).max(1);
    let mut normalized = vec![0.0f32; input.len()];
    let mut out = vec![0.0f32; input.len()];
    let mut inv_std = vec![0.0f32; rows];
    normalized
        .par_chunks_mut(rows_per_task * width)
        .zip(out.par_chunks_mut(rows_per_task * width))
        .zip(inv_std.par_chunks_mut(rows_per_task))
        .zip(input.par_chunks(rows_per_task * width))
        .for_each(|(((xhat, out), inv_std), x)| {
            for (r, x) in x.chunks_exact(width).enumerate() {
                let mean = x.iter().sum::<f32>() / width as f32;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
                let s = 1.0 / (var + eps as f32).sqrt();
                inv_std[r] = s;
                let (xhat, out) = (&mut xhat[r * width..][..width], &mut out[r * width..][..width]);
                for i in 0..width {
                    xhat[i] = (x[i] - mean) * s;
                    out[i] = xhat[i] * gamma_values[i] + beta_values[i];
                }
            }
        });
    drop((input, beta_values));
    let out = tensor(out, shape);
    let y = match LayerNormBackward
        .prepare::<NoCheckpointing>([x.node(), gamma.node(), beta.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            State {
                normalized: Arc::new(normalized),
                inv_std: Arc::new(inv_std),
                gamma: Arc::new(gamma_values),
            },
            out,
        ),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive::<Ad>(y)
}

/// The attention probabilities `softmax(scale · scores)` over the last dimension, with the keys
/// where `keep[b · keys + k]` is false left out (probability 0). `scores` is
/// `[batch, heads, queries, keys]`.
pub(crate) fn masked_softmax(scores: Tensor<4>, scale: f32, keep: Arc<Vec<bool>>) -> Tensor<4> {
    #[derive(Debug)]
    struct SoftmaxBackward;

    impl Backward<Flex, 1> for SoftmaxBackward {
        /// The probabilities, the scale and the row length.
        type State = (FlexTensor, f32, usize);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let (probs, scale, keys) = ops.state;
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
                let shape = grad.shape();
                let probs = values(&probs);
                let mut ds = values(&grad).into_owned();
                let rows_per_task = (ELEMENTS_PER_TASK / keys).max(1);
                ds.par_chunks_mut(rows_per_task * keys)
                    .zip(probs.par_chunks(rows_per_task * keys))
                    .for_each(|(ds, p)| {
                        for (g, p) in ds.chunks_exact_mut(keys).zip(p.chunks_exact(keys)) {
                            let dot: f32 = g.iter().zip(p).map(|(g, p)| g * p).sum();
                            g.iter_mut().zip(p).for_each(|(g, p)| *g = scale * p * (*g - dot));
                        }
                    });
                tensor(ds, shape)
            });
        }
    }

    let [batch, heads, queries, keys] = scores.dims();
    assert_eq!(
        keep.len(),
        batch * keys,
        "masked_softmax: one flag per key of every text"
    );
    let scores = primitive(scores);
    let shape = scores.primitive().shape();
    let mut probs = values(scores.primitive()).into_owned();
    let rows_per_text = heads * queries;
    probs
        .par_chunks_mut(rows_per_text * keys)
        .zip(keep.par_chunks(keys))
        .for_each(|(rows, keep)| {
            for row in rows.chunks_exact_mut(keys) {
                let max = row
                    .iter()
                    .zip(keep)
                    .filter(|(_, k)| **k)
                    .map(|(v, _)| *v)
                    .fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0f32;
                for (v, k) in row.iter_mut().zip(keep) {
                    *v = if *k { exp(scale * (*v - max)) } else { 0.0 };
                    sum += *v;
                }
                let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
                row.iter_mut().for_each(|v| *v *= inv);
            }
        });
    let out = tensor(probs, shape);
    let y = match SoftmaxBackward
        .prepare::<NoCheckpointing>([scores.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((out.clone(), scale, keys), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive::<Ad>(y)
}

/// Inverted dropout: each element of `x` is zeroed with probability `p` and the rest scaled by
/// `1 / (1 − p)`; backward `dx = dy · mask / (1 − p)`. The mask is counter-based (element `i`'s
/// draw is a hash of `seed` and `i`, as Philox is in PyTorch's CUDA kernels), so it does not depend
/// on how rayon splits the work, and it is kept for the backward pass as one bit per element.
pub(crate) fn dropout<const D: usize>(x: Tensor<D>, p: f32, seed: u64) -> Tensor<D> {
    #[derive(Debug)]
    struct DropoutBackward;

    impl Backward<Flex, 1> for DropoutBackward {
        /// The kept elements (bit `i % 64` of word `i / 64`) and the scale of the kept ones.
        type State = (Arc<Vec<u64>>, f32);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let (keep, scale) = ops.state;
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
                let shape = grad.shape();
                let mut dx = values(&grad).into_owned();
                apply_mask(&mut dx, &keep, scale);
                tensor(dx, shape)
            });
        }
    }

    let x = primitive(x);
    let shape = x.primitive().shape();
    let mut y = values(x.primitive()).into_owned();
    // Elements with a draw below the threshold are dropped: probability `p`.
    let threshold = (f64::from(p.clamp(0.0, 1.0)) * 4_294_967_296.0).min(4_294_967_295.0) as u32;
    let mut keep = vec![0u64; y.len().div_ceil(64)];
    keep.par_chunks_mut(ELEMENTS_PER_TASK / 64)
        .enumerate()
        .for_each(|(task, words)| {
            for (w, word) in words.iter_mut().enumerate() {
                let first = (task * ELEMENTS_PER_TASK / 64 + w) as u64 * 32;
                for pair in 0..32u64 {
                    let draws = super::super::dropout::mix(seed, first + pair);
                    let kept = u64::from(draws as u32 >= threshold) | u64::from((draws >> 32) as u32 >= threshold) << 1;
                    *word |= kept << (2 * pair);
                }
            }
        });
    let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
    apply_mask(&mut y, &keep, scale);
    let out = tensor(y, shape);
    let keep = Arc::new(keep);
    let y = match DropoutBackward
        .prepare::<NoCheckpointing>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((keep, scale), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive::<Ad>(y)
}

/// `v[i] · scale` where bit `i` of `keep` is set, 0 elsewhere.
fn apply_mask(v: &mut [f32], keep: &[u64], scale: f32) {
    v.par_chunks_mut(ELEMENTS_PER_TASK)
        .zip(keep.par_chunks(ELEMENTS_PER_TASK / 64))
        .for_each(|(v, keep)| {
            for (v, word) in v.chunks_mut(64).zip(keep) {
                for (i, v) in v.iter_mut().enumerate() {
                    *v = if word >> i & 1 == 1 { *v * scale } else { 0.0 };
                }
            }
        });
}

#[cfg(test)]
mod tests {
    //! Each fused op against burn's own ops on the same autodiff device: values and the
    //! gradients of every input, through a weighted sum so no gradient is uniform.
    use super::*;
    use burn::tensor::activation;
    use burn::tensor::{Bool, Device, Distribution};

    fn leaf<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<D> {
        let device = Device::flex();
        burn::tensor::Tensor::<D>::random(shape, Distribution::Normal(0.0, 2.0), &device)
            .add_scalar(seed as f32 * 1e-3)
            .autodiff()
            .require_grad()
    }

    fn weights<const D: usize>(like: &Tensor<D>) -> Tensor<D> {
        Tensor::<D>::random(like.shape(), Distribution::Uniform(-1.0, 1.0), &Device::flex()).autodiff()
    }

    fn close<const D: usize>(what: &str, got: Tensor<D>, want: Tensor<D>, tolerance: f32) {
        let (got, want) = (got.inner().into_data(), want.inner().into_data());
        let (got, want) = (
            got.iter::<f32>().collect::<Vec<_>>(),
            want.iter::<f32>().collect::<Vec<_>>(),
        );
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0f32, f32::max);
        assert!(
            worst <= tolerance * scale,
            "{what}: worst difference {worst:e} (scale {scale})"
        );
    }

    #[test]
    fn gelu_and_its_gradient_match_burns() {
        let x = leaf([3, 7, 1000], 1);
        let w = weights(&x);
        assert!(applies(&x));
        let (ours, theirs) = (gelu(x.clone()), activation::gelu(x.clone()));
        close("gelu", ours.clone(), theirs.clone(), 1e-6);
        let g_ours = x.grad(&(ours * w.clone()).sum().backward()).expect("x has a gradient");
        let g_theirs = x.grad(&(theirs * w).sum().backward()).expect("x has a gradient");
        close("gelu gradient", g_ours, g_theirs, 1e-6);
    }

    #[test]
    fn layer_norm_and_its_gradients_match_burns() {
        let (x, gamma, beta) = (leaf([4, 33, 384], 2), leaf([384], 3), leaf([384], 4));
        let w = weights(&x);
        let mut norm = burn::nn::LayerNormConfig::new(384)
            .with_epsilon(1e-12)
            .init(&Device::flex());
        norm.gamma = burn::module::Param::from_tensor(gamma.clone());
        norm.beta = Some(burn::module::Param::from_tensor(beta.clone()));
        let ours = layer_norm(x.clone(), gamma.clone(), beta.clone(), 1e-12);
        let theirs = norm.forward(x.clone());
        close("layer_norm", ours.clone(), theirs.clone(), 1e-5);
        let g_ours = (ours * w.clone()).sum().backward();
        let g_theirs = (theirs * w).sum().backward();
        let grad = |t: &Tensor<1>, g| t.grad(g).expect("a gradient");
        close(
            "x",
            x.grad(&g_ours).expect("a gradient"),
            x.grad(&g_theirs).expect("a gradient"),
            1e-4,
        );
        close("gamma", grad(&gamma, &g_ours), grad(&gamma, &g_theirs), 1e-4);
        close("beta", grad(&beta, &g_ours), grad(&beta, &g_theirs), 1e-4);
    }

    #[test]
    fn masked_softmax_and_its_gradient_match_burns() {
        let (batch, heads, queries, keys) = (3, 2, 5, 9);
        let scores = leaf([batch, heads, queries, keys], 5);
        let w = weights(&scores);
        let lengths = [9, 4, 1];
        let keep: Vec<bool> = lengths.iter().flat_map(|&n| (0..keys).map(move |k| k < n)).collect();
        let padding = Tensor::<2, Bool>::from_data(
            TensorData::new(keep.iter().map(|k| !k).collect::<Vec<_>>(), [batch, keys]),
            &scores.device(),
        )
        .reshape([batch, 1, 1, keys])
        .expand([batch, heads, queries, keys]);
        let scale = 0.25;
        let ours = masked_softmax(scores.clone(), scale, Arc::new(keep));
        let theirs = activation::softmax(
            scores.clone().mul_scalar(scale).mask_fill(padding, f32::NEG_INFINITY),
            3,
        );
        close("softmax", ours.clone(), theirs.clone(), 1e-6);
        let g_ours = scores.grad(&(ours * w.clone()).sum().backward()).expect("a gradient");
        let g_theirs = scores.grad(&(theirs * w).sum().backward()).expect("a gradient");
        close("softmax gradient", g_ours, g_theirs, 1e-5);
    }

    #[test]
    fn linear_and_its_gradients_match_burns() {
        let (x, weight, bias) = (leaf([3, 37, 48], 6), leaf([48, 70], 7), leaf([70], 8));
        let ours = linear(x.clone(), weight.clone(), bias.clone());
        let theirs = x.clone().matmul(weight.clone().unsqueeze()) + bias.clone().unsqueeze();
        let w = weights(&ours);
        close("linear", ours.clone(), theirs.clone(), 1e-5);
        let g_ours = (ours * w.clone()).sum().backward();
        let g_theirs = (theirs * w).sum().backward();
        close(
            "x",
            x.grad(&g_ours).expect("a gradient"),
            x.grad(&g_theirs).expect("a gradient"),
            1e-5,
        );
        let (a, b) = (
            weight.grad(&g_ours).expect("a gradient"),
            weight.grad(&g_theirs).expect("a gradient"),
        );
        close("weight", a, b, 1e-5);
        close(
            "bias",
            bias.grad(&g_ours).expect("a gradient"),
            bias.grad(&g_theirs).expect("a gradient"),
            1e-5,
        );
    }

    #[test]
    fn dropout_drops_its_share_and_routes_the_gradient_through_the_kept_elements() {
        // 40 000 elements: several rayon tasks and a tail that does not fill a mask word.
        let x = leaf([200, 200], 1);
        let w = weights(&x);
        let y = dropout(x.clone(), 0.25, 99);
        let grads = (y.clone() * w.clone()).sum().backward();
        let (xs, ys) = (
            x.clone().inner().into_data().iter::<f32>().collect::<Vec<_>>(),
            y.clone().inner().into_data().iter::<f32>().collect::<Vec<_>>(),
        );
        let dropped = ys.iter().filter(|&&v| v == 0.0).count() as f32 / ys.len() as f32;
        assert!((dropped - 0.25).abs() < 0.01, "dropped {dropped}, expected 0.25");
        let scale = 1.0 / 0.75;
        let kept: Vec<bool> = ys.iter().map(|&v| v != 0.0).collect();
        for ((x, y), kept) in xs.iter().zip(&ys).zip(&kept) {
            let want = if *kept { x * scale } else { 0.0 };
            assert!((y - want).abs() <= 1e-6 * want.abs().max(1.0), "{y} vs {want}");
        }
        // dx = w · mask / (1 − p).
        let dx = x
            .grad(&grads)
            .expect("a gradient")
            .into_data()
            .iter::<f32>()
            .collect::<Vec<_>>();
        let ws = w.inner().into_data().iter::<f32>().collect::<Vec<_>>();
        for ((g, w), kept) in dx.iter().zip(&ws).zip(&kept) {
            let want = if *kept { w * scale } else { 0.0 };
            assert!((g - want).abs() <= 1e-6, "{g} vs {want}");
        }
        // The same seed draws the same mask, another seed another one.
        let again = dropout(x.clone(), 0.25, 99).inner().into_data();
        assert_eq!(again, y.inner().into_data());
        let other = dropout(x, 0.25, 100)
            .inner()
            .into_data()
            .iter::<f32>()
            .collect::<Vec<_>>();
        let same = other
            .iter()
            .zip(&ys)
            .filter(|(a, b)| (**a == 0.0) == (**b == 0.0))
            .count();
        assert!(
            same < ys.len() * 7 / 10,
            "two seeds agree on {same} of {} elements",
            ys.len()
        );
    }

    #[test]
    fn untracked_inputs_need_no_gradient() {
        let x = Tensor::<2>::random([4, 16], Distribution::Normal(0.0, 1.0), &Device::flex()).autodiff();
        let y = gelu(x.clone()).sum().into_scalar::<f32>();
        let want = activation::gelu(x.inner()).sum().into_scalar::<f32>();
        assert!((y - want).abs() <= 1e-5 * want.abs().max(1.0), "{y} vs {want}");
    }
}
