//! Fused CPU ops with hand-written backward passes, for fine-tuning on burn's autodiff over
//! `flex`.
//!
//! Under autodiff, burn builds LayerNorm and softmax out of a dozen elementwise ops each, and
//! `flex` runs every elementwise op (GELU's `erf` too) on the calling thread alone while the rayon
//! workers wait for the next matrix product: `perf` on `train_speed` showed the main thread
//! busy with elementwise work for about 40 % of a step's wall time. The ops here (exact GELU,
//! LayerNorm, the attention softmax with its padding mask, dropout) each make one pass forward
//! and one backward, split over the rayon pool, with the vectorised `erfc` and `exp` of the
//! inference kernels, overwriting buffers nothing else holds. The matrix products (Linear forward
//! and backward, attention's per-head `Q Kᵀ` and `P V`) run on the inference path's packed GEMM
//! ([`sgemm`]), about twice the rate of flex's on these shapes. They register their own backward
//! step on the autodiff graph, so the gradients flowing into and out of them are burn's.
//!
//! [`applies`] tells the model code when to take them: an f32 tensor on the autodiff device over
//! `flex`. Everything else (inference, the GPU backends) keeps burn's ops.

use std::cell::RefCell;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::backend::{BackendTypes, TensorMetadata};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::{erfc_abs, exp, gelu_row};
use crate::kernels::sgemm::{F32Path, PackedF32, sgemm, sgemm_serial};

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

/// `t` as a contiguous tensor this op may overwrite: `t` itself when it alone holds a buffer of
/// exactly its elements (an activation or gradient nothing else keeps), else a copy. Saves the
/// calling thread a copy of `[batch, heads, seq, seq]` scores and their gradients.
fn writable(t: FlexTensor) -> FlexTensor {
    let exact = t.as_slice::<f32>().is_some_and(|v| v.len() == t.storage::<f32>().len());
    match exact && t.is_unique() {
        true => t,
        false => tensor(values(&t).into_owned(), t.shape()),
    }
}

fn tensor(values: Vec<f32>, shape: burn::tensor::Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `x · W + b` for `x` `[.., in]`, `W` `[in, out]` (burn's `Linear` layout) and `b` `[out]`, on the
/// packed GEMM of the inference path ([`sgemm`]) forward and backward: `y = x · W + b` with the
/// bias added in the GEMM's store, `dx = dy · Wᵀ` and `dW = xᵀ · dy`, and `db = Σ dy` summed over
/// the rayon pool. On Zen 4 flex's matrix products (the `gemm` crate) ran these shapes at 50–65
/// GFLOP/s on two threads, the packed GEMM at 130–180.
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
            let dy = values(&grad);
            let [x_node, weight_node, bias_node] = ops.parents;
            if let Some(node) = bias_node {
                grads.register::<Flex>(node.id, tensor(column_sums(&dy, d_out), [d_out].into()));
            }
            if let Some(node) = weight_node {
                // dW = xᵀ · dy: xᵀ made row-major (the GEMM reads A's rows in place), dy packed.
                let dw = with_scratch(&TRANSPOSED, |xt| {
                    let ld = transpose_into(&values(&x), rows, d_in, xt);
                    product(xt, ld, d_in, Rhs::new(&dy, rows, d_out, d_out, 1), None)
                });
                grads.register::<Flex>(node.id, dw);
            }
            if let Some(node) = x_node {
                // dx = dy · Wᵀ: Wᵀ packed straight from W's rows.
                let weight = values(&weight);
                let wt = Rhs::new(&weight, d_out, d_in, 1, d_out);
                grads.register::<Flex>(node.id, product(&dy, d_out, rows, wt, None).reshape(x.shape()));
            }
        }
    }

    let (x, weight, bias) = (primitive(x), primitive(weight), primitive(bias));
    let input = x.primitive().clone();
    let w = weight.primitive().clone();
    let mut shape = input.shape();
    let [d_in, d_out] = [w.shape()[0], w.shape()[1]];
    let rows = shape.num_elements() / d_in;
    let weights = values(&w);
    let rhs = Rhs::new(&weights, d_in, d_out, d_out, 1);
    let out = product(&values(&input), d_in, rows, rhs, Some(&values(bias.primitive())));
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

thread_local! {
    /// Right-hand sides packed for [`sgemm`], reused from call to call: training packs a
    /// `[tokens, width]` gradient per Linear, and a fresh buffer costs its zeroing too.
    static PACKED: RefCell<PackedF32> = const { RefCell::new(PackedF32::empty()) };
    /// The transposed inputs of the weight gradients, reused likewise.
    static TRANSPOSED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's `scratch`, or on a fresh value where a caller up the stack holds it
/// (a rayon thread that picked up another task while waiting).
fn with_scratch<T: Default + 'static, R>(
    scratch: &'static std::thread::LocalKey<RefCell<T>>,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    scratch.with(|cell| match cell.try_borrow_mut() {
        Ok(mut held) => f(&mut held),
        Err(_) => f(&mut T::default()),
    })
}

/// A right-hand matrix `[k, n]` to pack, element `(kk, nn)` at `b[kk * row_stride + nn * col_stride]`.
struct Rhs<'a> {
    b: &'a [f32],
    k: usize,
    n: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Rhs<'a> {
    fn new(b: &'a [f32], k: usize, n: usize, row_stride: usize, col_stride: usize) -> Self {
        Rhs {
            b,
            k,
            n,
            row_stride,
            col_stride,
        }
    }

    /// Runs `f` on this matrix packed into this thread's scratch.
    fn packed<R>(&self, f: impl FnOnce(&PackedF32) -> R) -> R {
        with_scratch(&PACKED, |packed| {
            packed.repack_strided(
                self.b,
                self.k,
                self.n,
                self.row_stride,
                self.col_stride,
                F32Path::chosen(),
            );
            f(packed)
        })
    }
}

/// `a · b (+ bias)` as a `[m, n]` tensor, `a` row-major `[m, k]` with row stride `lda`.
fn product(a: &[f32], lda: usize, m: usize, b: Rhs<'_>, bias: Option<&[f32]>) -> FlexTensor {
    b.packed(|packed| {
        // Not `FlexTensor::empty`: it allocates bytes and then copies them to realign them.
        let mut out = vec![0.0f32; m * b.n];
        sgemm(a, lda, m, packed, bias, &mut out, b.n);
        tensor(out, [m, b.n].into())
    })
}

/// Writes `m` `[rows, cols]` transposed into `out` as `[cols, rows]` with a row stride chosen so
/// that consecutive rows do not share L1 sets (a multiple of 16 floats but not of 32: at
/// 8,192 tokens a stride of `rows` put every row the GEMM reads on one set), and returns the
/// stride. Split in tiles over the rayon pool.
fn transpose_into(m: &[f32], rows: usize, cols: usize, out: &mut Vec<f32>) -> usize {
    const TILE: usize = 32;
    let ld = match rows.next_multiple_of(16) {
        even if (even / 16) % 2 == 0 => even + 16,
        odd => odd,
    };
    out.resize(ld * cols, 0.0);
    // Each task writes TILE whole rows of the output: TILE columns of the input.
    out.par_chunks_mut(TILE * ld)
        .enumerate()
        .for_each(|(t, block)| transpose_columns(m, rows, cols, t * TILE, block, ld));
    ld
}

/// `Q Kᵀ` of every head: `query` `[batch, seq_q, hidden]` and `key` `[batch, seq_k, hidden]`, heads
/// side by side in `hidden` as the Q and K Linears give them, to scores `[batch, heads, seq_q,
/// seq_k]`. With [`attention_context`] this keeps the heads in place: no `[batch, heads, seq,
/// head_dim]` copies forward or backward, and every product runs on [`sgemm_serial`], one text per
/// rayon task.
pub(crate) fn attention_scores(query: Tensor<3>, key: Tensor<3>, heads: usize) -> Tensor<4> {
    #[derive(Debug)]
    struct ScoresBackward;

    impl Backward<Flex, 2> for ScoresBackward {
        /// The query, the key and the head count.
        type State = (FlexTensor, FlexTensor, usize);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let (query, key, heads) = ops.state;
            let grad = grads.consume::<Flex>(&ops.node);
            let h = Heads::of(&query, &key, heads);
            let (q, k, ds) = (values(&query), values(&key), values(&grad));
            let [query_node, key_node] = ops.parents;
            if let Some(node) = query_node {
                // dQ_h = dS_h · K_h
                let dq = per_text(h.batch, h.sq * h.hidden, |b, out| {
                    for head in 0..h.heads {
                        let rhs = Rhs::new(&k[h.k(b, head)..], h.sk, h.dim, h.hidden, 1);
                        gemm_into(&ds[h.s(b, head)..], h.sk, h.sq, rhs, &mut out[head * h.dim..], h.hidden);
                    }
                });
                grads.register::<Flex>(node.id, tensor(dq, query.shape()));
            }
            if let Some(node) = key_node {
                // dK_h = dS_hᵀ · Q_h
                let dk = per_text(h.batch, h.sk * h.hidden, |b, out| {
                    let mut dst = Vec::new();
                    for head in 0..h.heads {
                        transpose_serial(&ds[h.s(b, head)..][..h.sq * h.sk], h.sq, h.sk, &mut dst);
                        let rhs = Rhs::new(&q[h.q(b, head)..], h.sq, h.dim, h.hidden, 1);
                        gemm_into(&dst, h.sq, h.sk, rhs, &mut out[head * h.dim..], h.hidden);
                    }
                });
                grads.register::<Flex>(node.id, tensor(dk, key.shape()));
            }
        }
    }

    let (query, key) = (primitive(query), primitive(key));
    let (q_in, k_in) = (query.primitive().clone(), key.primitive().clone());
    let h = Heads::of(&q_in, &k_in, heads);
    let scores = {
        let (q, k) = (values(&q_in), values(&k_in));
        per_text(h.batch, h.heads * h.sq * h.sk, |b, out| {
            for head in 0..h.heads {
                let rhs = Rhs::new(&k[h.k(b, head)..], h.dim, h.sk, 1, h.hidden);
                gemm_into(
                    &q[h.q(b, head)..],
                    h.hidden,
                    h.sq,
                    rhs,
                    &mut out[head * h.sq * h.sk..],
                    h.sk,
                );
            }
        })
    };
    let out = tensor(scores, [h.batch, h.heads, h.sq, h.sk].into());
    let y = match ScoresBackward
        .prepare::<NoCheckpointing>([query.node(), key.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((q_in, k_in, heads), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive::<Ad>(y)
}

/// `P V` of every head: probabilities `[batch, heads, seq_q, seq_k]` and `value` `[batch, seq_k,
/// hidden]` to the context `[batch, seq_q, hidden]`, heads side by side (see [`attention_scores`]).
pub(crate) fn attention_context(probs: Tensor<4>, value: Tensor<3>) -> Tensor<3> {
    #[derive(Debug)]
    struct ContextBackward;

    impl Backward<Flex, 2> for ContextBackward {
        /// The probabilities and the value.
        type State = (FlexTensor, FlexTensor);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let (probs, value) = ops.state;
            let grad = grads.consume::<Flex>(&ops.node);
            let h = Heads::of_context(&probs, &value);
            let (p, v, dout) = (values(&probs), values(&value), values(&grad));
            let [probs_node, value_node] = ops.parents;
            if let Some(node) = probs_node {
                // dP_h = dO_h · V_hᵀ
                let dp = per_text(h.batch, h.heads * h.sq * h.sk, |b, out| {
                    for head in 0..h.heads {
                        let rhs = Rhs::new(&v[h.k(b, head)..], h.dim, h.sk, 1, h.hidden);
                        gemm_into(
                            &dout[h.q(b, head)..],
                            h.hidden,
                            h.sq,
                            rhs,
                            &mut out[head * h.sq * h.sk..],
                            h.sk,
                        );
                    }
                });
                grads.register::<Flex>(node.id, tensor(dp, probs.shape()));
            }
            if let Some(node) = value_node {
                // dV_h = P_hᵀ · dO_h
                let dv = per_text(h.batch, h.sk * h.hidden, |b, out| {
                    let mut pt = Vec::new();
                    for head in 0..h.heads {
                        transpose_serial(&p[h.s(b, head)..][..h.sq * h.sk], h.sq, h.sk, &mut pt);
                        let rhs = Rhs::new(&dout[h.q(b, head)..], h.sq, h.dim, h.hidden, 1);
                        gemm_into(&pt, h.sq, h.sk, rhs, &mut out[head * h.dim..], h.hidden);
                    }
                });
                grads.register::<Flex>(node.id, tensor(dv, value.shape()));
            }
        }
    }

    let (probs, value) = (primitive(probs), primitive(value));
    let (p_in, v_in) = (probs.primitive().clone(), value.primitive().clone());
    let h = Heads::of_context(&p_in, &v_in);
    let context = {
        let (p, v) = (values(&p_in), values(&v_in));
        per_text(h.batch, h.sq * h.hidden, |b, out| {
            for head in 0..h.heads {
                let rhs = Rhs::new(&v[h.k(b, head)..], h.sk, h.dim, h.hidden, 1);
                gemm_into(&p[h.s(b, head)..], h.sk, h.sq, rhs, &mut out[head * h.dim..], h.hidden);
            }
        })
    };
    let out = tensor(context, [h.batch, h.sq, h.hidden].into());
    let y = match ContextBackward
        .prepare::<NoCheckpointing>([probs.node(), value.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((p_in, v_in), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive::<Ad>(y)
}

/// The shape of an attention call, and where a head's blocks start in its buffers.
#[derive(Clone, Copy)]
struct Heads {
    batch: usize,
    heads: usize,
    /// Queries and keys per text.
    sq: usize,
    sk: usize,
    hidden: usize,
    /// Features per head.
    dim: usize,
}

impl Heads {
    /// From a query `[batch, seq_q, hidden]` and a key `[batch, seq_k, hidden]`.
    fn of(query: &FlexTensor, key: &FlexTensor, heads: usize) -> Self {
        let (q, k) = (query.shape(), key.shape());
        assert!(
            q.num_dims() == 3 && k.num_dims() == 3 && q[0] == k[0] && q[2] == k[2] && heads > 0 && q[2] % heads == 0,
            "attention_scores: query {q:?} and key {k:?} do not split into {heads} heads"
        );
        Heads {
            batch: q[0],
            heads,
            sq: q[1],
            sk: k[1],
            hidden: q[2],
            dim: q[2] / heads,
        }
    }

    /// From probabilities `[batch, heads, seq_q, seq_k]` and a value `[batch, seq_k, hidden]`.
    fn of_context(probs: &FlexTensor, value: &FlexTensor) -> Self {
        let (p, v) = (probs.shape(), value.shape());
        assert!(
            p.num_dims() == 4 && v.num_dims() == 3 && p[0] == v[0] && p[3] == v[1] && p[1] > 0 && v[2] % p[1] == 0,
            "attention_context: probabilities {p:?} and value {v:?} do not match"
        );
        Heads {
            batch: p[0],
            heads: p[1],
            sq: p[2],
            sk: p[3],
            hidden: v[2],
            dim: v[2] / p[1],
        }
    }

    /// Offset of head `head` of text `b` in a query-side `[batch, seq_q, hidden]` buffer.
    fn q(&self, b: usize, head: usize) -> usize {
        b * self.sq * self.hidden + head * self.dim
    }

    /// Offset of head `head` of text `b` in a key-side `[batch, seq_k, hidden]` buffer.
    fn k(&self, b: usize, head: usize) -> usize {
        b * self.sk * self.hidden + head * self.dim
    }

    /// Offset of head `head` of text `b` in a `[batch, heads, seq_q, seq_k]` buffer.
    fn s(&self, b: usize, head: usize) -> usize {
        (b * self.heads + head) * self.sq * self.sk
    }
}

/// A `[batch * per_text]` buffer filled by `fill(b, text_b's_chunk)`, one text per rayon task.
fn per_text(batch: usize, per_text: usize, fill: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = vec![0.0f32; batch * per_text];
    if per_text > 0 {
        out.par_chunks_mut(per_text)
            .enumerate()
            .for_each(|(b, chunk)| fill(b, chunk));
    }
    out
}

/// `c = a · b` on the calling thread, `a` row-major `[m, b.k]` with row stride `lda`, `c` with
/// row stride `ldc`; `b` packed into this thread's scratch.
fn gemm_into(a: &[f32], lda: usize, m: usize, b: Rhs<'_>, c: &mut [f32], ldc: usize) {
    b.packed(|packed| sgemm_serial(a, lda, m, packed, None, c, ldc))
}

/// `m` `[rows, cols]` transposed into `out` as row-major `[cols, rows]`, on the calling thread.
fn transpose_serial(m: &[f32], rows: usize, cols: usize, out: &mut Vec<f32>) {
    out.resize(rows * cols, 0.0);
    transpose_columns(m, rows, cols, 0, out, rows);
}

/// Columns `c0 ..` of `m` `[rows, cols]` as the rows of `block` (row stride `ld` ≥ `rows`), as many
/// as `block` holds: eight source rows at a time, so each output row gets a contiguous run of eight.
fn transpose_columns(m: &[f32], rows: usize, cols: usize, c0: usize, block: &mut [f32], ld: usize) {
    const RUN: usize = 8;
    for r0 in (0..rows).step_by(RUN) {
        let src = &m[r0 * cols..(r0 + RUN).min(rows) * cols];
        for (c, dst) in block.chunks_exact_mut(ld).enumerate() {
            for (d, row) in dst[r0..].iter_mut().zip(src.chunks_exact(cols)) {
                *d = row[c0 + c];
            }
        }
    }
}

/// `Σ a_i b_i` in 16 independent partial sums, so the loop vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut sums = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(a, b)| a * b).sum();
    for (a, b) in ca.zip(cb) {
        sums.iter_mut().zip(a.iter().zip(b)).for_each(|(s, (a, b))| *s += a * b);
    }
    tail + sums.iter().sum::<f32>()
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
                let mut dx = writable(grad);
                let x = values(&x);
                dx.storage_mut::<f32>()
                    .par_chunks_mut(ELEMENTS_PER_TASK)
                    .zip(x.par_chunks(ELEMENTS_PER_TASK))
                    .for_each(|(g, x)| gelu_grad_row(g, x));
                dx
            });
        }
    }

    let x = primitive(x);
    let input = x.primitive().clone();
    let shape = input.shape();
    let mut out = vec![0.0f32; shape.num_elements()];
    out.par_chunks_mut(ELEMENTS_PER_TASK)
        .zip(values(&input).par_chunks(ELEMENTS_PER_TASK))
        .for_each(|(out, x)| {
            out.copy_from_slice(x);
            gelu_row(out);
        });
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
                let probs = values(&probs);
                let mut grad = writable(grad);
                let ds = grad.storage_mut::<f32>();
                let rows_per_task = (ELEMENTS_PER_TASK / keys).max(1);
                ds.par_chunks_mut(rows_per_task * keys)
                    .zip(probs.par_chunks(rows_per_task * keys))
                    .for_each(|(ds, p)| {
                        for (g, p) in ds.chunks_exact_mut(keys).zip(p.chunks_exact(keys)) {
                            let dot = dot(g, p);
                            g.iter_mut().zip(p).for_each(|(g, p)| *g = scale * p * (*g - dot));
                        }
                    });
                grad
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
    let node = scores.node();
    // The scores are needed by nothing else (the backward pass uses the probabilities).
    let mut out = writable(scores.into_primitive());
    let rows_per_text = heads * queries;
    out.storage_mut::<f32>()
        .par_chunks_mut(rows_per_text * keys)
        .zip(keep.par_chunks(keys))
        .for_each(|(rows, keep)| {
            // Padding trails the text's tokens: then the kept keys are a prefix, and the
            // inference path's vectorised softmax runs over it.
            let kept = keep.iter().take_while(|k| **k).count();
            if keep[kept..].iter().all(|k| !k) {
                for row in rows.chunks_exact_mut(keys) {
                    if kept > 0 {
                        super::attention::softmax(&mut row[..kept], scale);
                    }
                    row[kept..].fill(0.0);
                }
                return;
            }
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
    let y = match SoftmaxBackward
        .prepare::<NoCheckpointing>([node])
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
                let mut dx = writable(grad);
                apply_mask(dx.storage_mut::<f32>(), &keep, scale);
                dx
            });
        }
    }

    let x = primitive(x);
    let node = x.node();
    let mut out = writable(x.into_primitive());
    let y = out.storage_mut::<f32>();
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
    apply_mask(y, &keep, scale);
    let keep = Arc::new(keep);
    let y = match DropoutBackward
        .prepare::<NoCheckpointing>([node])
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
        // Trailing padding of three lengths (the vectorised path), and a text whose kept keys
        // are not a prefix (the general one).
        let (batch, heads, queries, keys) = (4, 2, 5, 37);
        let scores = leaf([batch, heads, queries, keys], 5);
        let w = weights(&scores);
        let lengths = [37, 20, 1];
        let mut keep: Vec<bool> = lengths.iter().flat_map(|&n| (0..keys).map(move |k| k < n)).collect();
        keep.extend((0..keys).map(|k| k % 3 != 0));
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
    fn attention_products_and_their_gradients_match_burns() {
        // Odd sizes: 3 texts, 5 queries against 7 keys, 4 heads of 6 (query and key lengths differ
        // so a swapped index cannot pass).
        let (batch, sq, sk, heads, dim) = (3, 5, 7, 4, 6);
        let hidden = heads * dim;
        let (q, k, v) = (
            leaf([batch, sq, hidden], 9),
            leaf([batch, sk, hidden], 10),
            leaf([batch, sk, hidden], 11),
        );
        let split = |x: Tensor<3>| {
            let [b, s, _] = x.dims();
            x.reshape([b, s, heads, dim]).swap_dims(1, 2)
        };
        let ours = attention_scores(q.clone(), k.clone(), heads);
        let theirs = split(q.clone()).matmul(split(k.clone()).swap_dims(2, 3));
        close("scores", ours.clone(), theirs.clone(), 1e-5);
        let probs = activation::softmax(ours, 3);
        let probs_theirs = activation::softmax(theirs, 3);
        let ours = attention_context(probs, v.clone());
        let theirs = probs_theirs
            .matmul(split(v.clone()))
            .swap_dims(1, 2)
            .reshape([batch, sq, hidden]);
        close("context", ours.clone(), theirs.clone(), 1e-5);
        let w = weights(&ours);
        let g_ours = (ours * w.clone()).sum().backward();
        let g_theirs = (theirs * w).sum().backward();
        for (name, x) in [("query", &q), ("key", &k), ("value", &v)] {
            let (got, want) = (x.grad(&g_ours), x.grad(&g_theirs));
            close(name, got.expect("a gradient"), want.expect("a gradient"), 1e-4);
        }
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
