//! `BertEncoder` on the host: the stack of `BertLayer`s run by sieve's own kernels over the
//! real tokens of a batch, with weights packed once at load in the precision asked for.
//!
//! Every family sieve loads (BERT, DistilBERT, RoBERTa, XLM-R, MPNet) runs its layers through
//! `BertLayer`, so this one stack serves them all; MPNet adds its [`RelativeBias`].
//! Per layer: one fused Q/K/V GEMM, attention per sequence without padding, the output
//! projection with the residual and LayerNorm, the feed-forward block with a fused bias + GELU.

use std::ops::Range;

use burn::nn::LayerNorm;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::attention::{Heads, RelativeBias, self_attention};
use super::gelu_row;
use super::linear::{CpuLinear, host};
use crate::device::Dtype;
use crate::kernels::RowSimd;
use crate::models::bert::BertLayer;
use crate::models::layers::Activation;

/// Rows per rayon task in the row-wise kernels (LayerNorm, activations).
const ROWS_PER_TASK: usize = 64;
/// Rows of whole sequences run through the stack as one task when a batch has enough of them
/// (see [`CpuEncoder::forward`]).
const GROUP_ROWS: usize = 192;
/// Rows the feed-forward block handles at a time: their `[rows, intermediate]` activations
/// (384 KiB for MiniLM) stay in L2 between the two GEMMs.
const FFN_ROWS: usize = 64;

/// LayerNorm with its parameters on the host.
pub(crate) struct CpuLayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl CpuLayerNorm {
    /// `norm`'s parameters with its `eps` (burn keeps epsilon private).
    pub(crate) fn from_burn(norm: &LayerNorm, eps: f64) -> Self {
        let gamma = host(norm.gamma.val());
        let beta = norm
            .beta
            .as_ref()
            .map(|b| host(b.val()))
            .unwrap_or_else(|| vec![0.0; gamma.len()]);
        Self {
            gamma,
            beta,
            eps: eps as f32,
        }
    }

    /// `x = LayerNorm(x + residual)` row by row (`residual` may be absent).
    pub(crate) fn forward(&self, x: &mut [f32], residual: Option<&[f32]>) {
        let width = self.gamma.len();
        let simd = RowSimd::detect();
        let task = |(i, rows): (usize, &mut [f32])| {
            let res = residual.map(|res| &res[i * ROWS_PER_TASK * width..][..rows.len()]);
            match simd {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `detect` returned Avx512 only where the CPU supports AVX-512 F.
                RowSimd::Avx512 => unsafe { self.rows_avx512(rows, res) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `detect` returned Avx2 only where the CPU supports AVX2 and FMA.
                RowSimd::Avx2 => unsafe { self.rows_avx2(rows, res) },
                _ => self.rows(rows, res),
            }
        };
        x.par_chunks_mut(width * ROWS_PER_TASK).enumerate().for_each(task);
    }

    /// [`Self::rows`] compiled for AVX-512.
    ///
    /// # Safety
    /// The CPU supports AVX-512 F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_avx512(&self, rows: &mut [f32], residual: Option<&[f32]>) {
        self.rows(rows, residual)
    }

    /// [`Self::rows`] compiled for AVX2.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_avx2(&self, rows: &mut [f32], residual: Option<&[f32]>) {
        self.rows(rows, residual)
    }

    /// LayerNorm of whole rows of `rows`, after adding `residual` (as long as `rows`).
    #[inline(always)]
    fn rows(&self, rows: &mut [f32], residual: Option<&[f32]>) {
        let width = self.gamma.len();
        for (r, row) in rows.chunks_exact_mut(width).enumerate() {
            if let Some(res) = residual {
                row.iter_mut()
                    .zip(&res[r * width..][..width])
                    .for_each(|(v, r)| *v += r);
            }
            self.row(row);
        }
    }

    #[inline(always)]
    fn row(&self, row: &mut [f32]) {
        let n = row.len() as f32;
        let mean = lane_sum(row, |v| v) / n;
        let var = lane_sum(row, |v| (v - mean) * (v - mean)) / n;
        let inv = 1.0 / (var + self.eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// Lanes of the partial sums in [`lane_sum`].
const LANES: usize = 16;

/// `Σ f(v)` over `row` in 16 running sums, which vectorise (one running sum cannot: float
/// addition is not associative, so the compiler keeps its order).
#[inline(always)]
fn lane_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut sums = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        sums.iter_mut().zip(chunk).for_each(|(s, &v)| *s += f(v));
    }
    sums.iter().sum::<f32>() + rest
}

/// `act` applied in place.
pub(crate) fn activate(act: Activation, x: &mut [f32]) {
    x.par_chunks_mut(16 * 1024).for_each(|chunk| match act {
        Activation::Gelu => gelu_row(chunk),
        Activation::GeluTanh => chunk.iter_mut().for_each(|v| {
            let x = *v;
            *v = 0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh());
        }),
        Activation::Relu => chunk.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Silu => chunk.iter_mut().for_each(|v| *v /= 1.0 + (-*v).exp()),
        Activation::Tanh => chunk.iter_mut().for_each(|v| *v = v.tanh()),
    });
}

/// One `BertLayer` with packed weights.
struct CpuLayer {
    qkv: CpuLinear,
    attention_output: CpuLinear,
    attention_norm: CpuLayerNorm,
    intermediate: CpuLinear,
    output: CpuLinear,
    output_norm: CpuLayerNorm,
}

/// The buffers one forward pass reuses from layer to layer (and, per thread, from call to call).
#[derive(Default)]
struct Buffers {
    qkv: Vec<f32>,
    context: Vec<f32>,
    attended: Vec<f32>,
    intermediate: Vec<f32>,
    residual: Vec<f32>,
}

thread_local! {
    /// Taken out while a pass runs: a pass that starts on this thread meanwhile (rayon runs
    /// queued tasks while it waits) starts from empty buffers.
    static BUFFERS: std::cell::Cell<Buffers> = std::cell::Cell::new(Buffers::default());
}

fn grow(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

/// The stack of layers of one model, on the host.
pub(crate) struct CpuEncoder {
    layers: Vec<CpuLayer>,
    heads: usize,
    hidden: usize,
    act: Activation,
    bias: Option<RelativeBias>,
}

impl CpuEncoder {
    /// Packs the weights of burn `layers` for `dtype` (f32, int8 or bf16).
    pub(crate) fn new(layers: &[BertLayer], heads: usize, act: Activation, dtype: Dtype) -> Self {
        let layers: Vec<CpuLayer> = layers
            .iter()
            .map(|l| CpuLayer {
                qkv: CpuLinear::fused(&[&l.query, &l.key, &l.value], dtype),
                attention_output: CpuLinear::from_burn(&l.attention_output_dense, dtype),
                attention_norm: CpuLayerNorm::from_burn(&l.attention_output_layer_norm, l.eps),
                intermediate: CpuLinear::from_burn(&l.intermediate_dense, dtype),
                output: CpuLinear::from_burn(&l.output_dense, dtype),
                output_norm: CpuLayerNorm::from_burn(&l.output_layer_norm, l.eps),
            })
            .collect();
        let hidden = layers.first().map_or(0, |l| l.attention_output.d_out());
        Self {
            layers,
            heads,
            hidden,
            act,
            bias: None,
        }
    }

    /// With MPNet's relative-position bias on the attention scores.
    pub(crate) fn with_bias(mut self, bias: RelativeBias) -> Self {
        self.bias = Some(bias);
        self
    }

    /// Runs the stack over `x`, `[rows, hidden]` holding the real tokens of `seqs` back to
    /// back. With `first_only` the last layer computes the first position of each sequence
    /// alone and the result is `[seqs, hidden]`; else `[rows, hidden]`.
    ///
    /// A batch with enough rows is cut into groups of whole sequences of about [`GROUP_ROWS`]
    /// rows, each run through every layer as one task: a group's activations stay in the core's
    /// cache from one operation to the next, where a pass over the whole batch streams each
    /// intermediate result through memory. Smaller batches run layer by layer with each
    /// operation split over the threads.
    pub(crate) fn forward(&self, x: Vec<f32>, seqs: &[Range<usize>], first_only: bool) -> Vec<f32> {
        let h = self.hidden;
        let groups = sequence_groups(seqs, GROUP_ROWS);
        if groups.len() < 2 * rayon::current_num_threads() {
            return self.forward_rows(x, seqs, first_only);
        }
        let outputs: Vec<Vec<f32>> = groups
            .par_iter()
            .with_max_len(1)
            .map(|group| {
                let seqs = &seqs[group.clone()];
                let mut rows = Vec::with_capacity(seqs.iter().map(|s| s.len()).sum::<usize>() * h);
                let mut local = Vec::with_capacity(seqs.len());
                for seq in seqs {
                    let start = rows.len() / h;
                    rows.extend_from_slice(&x[seq.start * h..seq.end * h]);
                    local.push(start..start + seq.len());
                }
                self.forward_rows(rows, &local, first_only)
            })
            .collect();
        outputs.concat()
    }

    /// [`Self::forward`] layer by layer over all of `x`.
    fn forward_rows(&self, mut x: Vec<f32>, seqs: &[Range<usize>], first_only: bool) -> Vec<f32> {
        let h = self.hidden;
        let mut buffers = BUFFERS.take();
        let last = self.layers.len().saturating_sub(1);
        let heads = Heads {
            count: self.heads,
            hidden: h,
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let rows = x.len() / h;
            let first = first_only && i == last;
            let qkv = grow(&mut buffers.qkv, rows * 3 * h);
            layer.qkv.forward(&x, rows, qkv);
            let out_rows = if first { seqs.len() } else { rows };
            let context = grow(&mut buffers.context, out_rows * h);
            self_attention(qkv, seqs, &heads, first, self.bias.as_ref(), context);
            // The residual of the attention block: x itself, or its first rows.
            let residual: &[f32] = if first {
                let res = grow(&mut buffers.residual, out_rows * h);
                for (dst, seq) in res.chunks_exact_mut(h).zip(seqs) {
                    dst.copy_from_slice(&x[seq.start * h..][..h]);
                }
                res
            } else {
                &x
            };
            let attended = grow(&mut buffers.attended, out_rows * h);
            layer.attention_output.forward(context, out_rows, attended);
            layer.attention_norm.forward(attended, Some(residual));
            let width = layer.intermediate.d_out();
            x.resize(out_rows * h, 0.0);
            for start in (0..out_rows).step_by(FFN_ROWS) {
                let n = FFN_ROWS.min(out_rows - start);
                let intermediate = grow(&mut buffers.intermediate, n * width);
                layer.intermediate.forward(&attended[start * h..], n, intermediate);
                activate(self.act, intermediate);
                layer
                    .output
                    .forward(intermediate, n, &mut x[start * h..(start + n) * h]);
            }
            layer.output_norm.forward(&mut x, Some(attended));
        }
        BUFFERS.set(buffers);
        x
    }
}

/// `seqs` cut into runs of consecutive sequences of at least `rows` rows each (the last may
/// have fewer), as ranges of sequence indices.
fn sequence_groups(seqs: &[Range<usize>], rows: usize) -> Vec<Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut held) = (0, 0);
    for (i, seq) in seqs.iter().enumerate() {
        held += seq.len();
        if held >= rows {
            groups.push(start..i + 1);
            (start, held) = (i + 1, 0);
        }
    }
    if start < seqs.len() {
        groups.push(start..seqs.len());
    }
    groups
}

/// The positions each text's real tokens sit at in a padded `[batch, seq]` batch (where `mask`
/// is non-zero). A text without any keeps position 0, so every sequence has a first row.
pub(crate) fn real_positions(mask: &[u32], batch: usize, seq: usize) -> Vec<Vec<usize>> {
    (0..batch)
        .map(|b| {
            let real: Vec<usize> = (0..seq).filter(|&t| mask[b * seq + t] != 0).collect();
            if real.is_empty() && seq > 0 { vec![0] } else { real }
        })
        .collect()
}

/// A padded batch `[batch, seq, hidden]` as the rows at `positions`, back to back, and each
/// text's range of them.
pub(crate) fn unpad(x: Tensor<3>, positions: &[Vec<usize>]) -> (Vec<f32>, Vec<Range<usize>>) {
    let [_, seq, hidden] = x.dims();
    let values = host(x);
    let mut rows = Vec::with_capacity(positions.iter().map(Vec::len).sum::<usize>() * hidden);
    let mut seqs = Vec::with_capacity(positions.len());
    for (b, real) in positions.iter().enumerate() {
        let start = rows.len() / hidden;
        for &t in real {
            rows.extend_from_slice(&values[(b * seq + t) * hidden..][..hidden]);
        }
        seqs.push(start..start + real.len());
    }
    (rows, seqs)
}

/// The inverse of [`unpad`]: `[batch, seq, hidden]` with zeros where no row was computed.
pub(crate) fn pad(
    rows: &[f32],
    hidden: usize,
    positions: &[Vec<usize>],
    seq: usize,
    device: &burn::tensor::Device,
) -> Tensor<3> {
    let batch = positions.len();
    let mut out = vec![0.0f32; batch * seq * hidden];
    let mut row = 0;
    for (b, real) in positions.iter().enumerate() {
        for &t in real {
            out[(b * seq + t) * hidden..][..hidden].copy_from_slice(&rows[row * hidden..][..hidden]);
            row += 1;
        }
    }
    Tensor::from_data(TensorData::new(out, [batch, seq, hidden]), device)
}

/// Whether a model on `device` in `dtype` runs its layers here rather than in burn.
pub(crate) fn runs_on_host(device: &burn::tensor::Device, dtype: Dtype) -> bool {
    !device.is_autodiff() && *device == burn::tensor::Device::flex() && (dtype != Dtype::F32 || !burn_forced())
}

/// `SIEVE_KERNEL=burn` keeps f32 models on burn's own CPU operations (the reference the host
/// kernels are measured against).
pub(crate) fn burn_forced() -> bool {
    crate::kernels::requested_path().as_deref() == Some("burn")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_groups_cover_every_sequence_once_in_order() {
        let seqs = [0..100, 100..150, 150..400, 400..401, 401..500, 500..520];
        let groups = sequence_groups(&seqs, 192);
        assert_eq!(groups, vec![0..3, 3..6]);
        assert_eq!(sequence_groups(&seqs, 1), (0..6).map(|i| i..i + 1).collect::<Vec<_>>());
        assert_eq!(sequence_groups(&seqs, 10_000), vec![0..6]);
        assert!(sequence_groups(&[], 192).is_empty());
    }
}
