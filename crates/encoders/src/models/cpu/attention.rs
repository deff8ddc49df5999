//! Multi-head self-attention over the real tokens of each sequence.
//!
//! The batch arrives unpadded: the rows of every sequence sit one after the other and a
//! sequence attends to its own rows only. Padded keys are therefore never computed, where
//! `BertSelfAttention` computes them and masks them to zero weight (which `exp` makes exact, so
//! the two agree). Each sequence is one rayon task; per head it packs `Kᵀ` and `V` out of the
//! fused `[rows, 3·hidden]` Q/K/V buffer, multiplies, and applies the softmax in place.

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

use super::exp;
use crate::kernels::sgemm::{F32Path, PackedF32, sgemm_serial};

/// MPNet's learned relative-position bias: `table[bucket(key - query) * heads + head]` is added
/// to the scaled scores.
pub(crate) struct RelativeBias {
    pub(crate) table: Vec<f32>,
    pub(crate) heads: usize,
    pub(crate) bucket: fn(i64) -> usize,
}

/// Per-thread buffers, grown once and reused by every sequence and head.
struct Scratch {
    scores: Vec<f32>,
    keys: PackedF32,
    values: PackedF32,
    /// `bucket(delta)` for `delta` in `-(len-1)..len`, for the sequence at hand.
    buckets: Vec<usize>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            scores: Vec::new(),
            keys: PackedF32::empty(),
            values: PackedF32::empty(),
            buckets: Vec::new(),
        })
    };
}

/// The shape of one attention call.
pub(crate) struct Heads {
    pub(crate) count: usize,
    pub(crate) hidden: usize,
}

/// softmax(Q Kᵀ / √d (+ bias)) V for every sequence and head.
///
/// `qkv` is `[rows, 3·hidden]` (Q, K, V side by side, heads contiguous within each);
/// `seqs` are the row ranges of the sequences. The context goes to `out`, `[rows, hidden]`, or
/// with `first_only` `[seqs, hidden]`: the first position of each sequence alone.
pub(crate) fn self_attention(
    qkv: &[f32],
    seqs: &[Range<usize>],
    heads: &Heads,
    first_only: bool,
    bias: Option<&RelativeBias>,
    out: &mut [f32],
) {
    let hidden = heads.hidden;
    // Split `out` into one disjoint chunk per sequence.
    let mut chunks = Vec::with_capacity(seqs.len());
    let mut rest = out;
    for seq in seqs {
        let rows = if first_only { 1 } else { seq.len() };
        let (chunk, tail) = rest.split_at_mut(rows * hidden);
        chunks.push(chunk);
        rest = tail;
    }
    let path = F32Path::chosen();
    seqs.par_iter().zip(chunks).with_max_len(1).for_each(|(seq, chunk)| {
        SCRATCH.with(|scratch| {
            let scratch = &mut *scratch.borrow_mut();
            attend(qkv, seq.clone(), heads, first_only, bias, path, scratch, chunk);
        })
    });
}

/// Every head of one sequence.
#[allow(clippy::too_many_arguments)]
fn attend(
    qkv: &[f32],
    seq: Range<usize>,
    heads: &Heads,
    first_only: bool,
    bias: Option<&RelativeBias>,
    path: F32Path,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    let (hidden, count) = (heads.hidden, heads.count);
    let d = hidden / count;
    let stride = 3 * hidden;
    let len = seq.len();
    let queries = if first_only { 1 } else { len };
    let scale = 1.0 / (d as f32).sqrt();
    if scratch.scores.len() < queries * len {
        scratch.scores.resize(queries * len, 0.0);
    }
    if let Some(bias) = bias {
        scratch.buckets.clear();
        scratch
            .buckets
            .extend((-(len as i64 - 1)..len as i64).map(|delta| (bias.bucket)(delta)));
    }
    let base = seq.start * stride;
    for head in 0..count {
        let q = base + head * d;
        let k = base + hidden + head * d;
        let v = base + 2 * hidden + head * d;
        // Kᵀ: element (i, j) is key j's i-th feature.
        scratch.keys.repack_strided(&qkv[k..], d, len, 1, stride, path);
        let scores = &mut scratch.scores[..queries * len];
        sgemm_serial(&qkv[q..], stride, queries, &scratch.keys, None, scores, len);
        for (i, row) in scores.chunks_exact_mut(len).enumerate() {
            match bias {
                Some(bias) => {
                    // bucket(key - query): index (j - i) + (len - 1) of `buckets`.
                    let buckets = &scratch.buckets[len - 1 - i..][..len];
                    for (s, &b) in row.iter_mut().zip(buckets) {
                        *s = *s * scale + bias.table[b * bias.heads + head];
                    }
                    softmax(row, 1.0);
                }
                None => softmax(row, scale),
            }
        }
        scratch.values.repack_strided(&qkv[v..], len, d, stride, 1, path);
        sgemm_serial(
            scores,
            len,
            queries,
            &scratch.values,
            None,
            &mut out[head * d..],
            hidden,
        );
    }
}

/// softmax(`scale` · row) in place, vectorised for the widest SIMD the CPU has.
pub(crate) fn softmax(row: &mut [f32], scale: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F, checked just above.
        return unsafe { softmax_avx512(row, scale) };
    } else if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        return unsafe { softmax_avx2(row, scale) };
    }
    softmax_portable(row, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_avx512(row: &mut [f32], scale: f32) {
    super::avx512::softmax(row, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_avx2(row: &mut [f32], scale: f32) {
    softmax_portable(row, scale)
}

/// Lanes of the partial maxima and sums: reductions in one accumulator cannot be vectorised
/// (float addition is not associative), 16 independent ones can.
const LANES: usize = 16;

#[inline(always)]
fn softmax_portable(row: &mut [f32], scale: f32) {
    let mut maxima = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        maxima.iter_mut().zip(chunk).for_each(|(m, &v)| *m = m.max(v));
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&maxima)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sums = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (s, v) in sums.iter_mut().zip(chunk) {
            *v = exp((*v - max) * scale);
            *s += *v;
        }
    }
    let mut sum: f32 = 0.0;
    for v in chunks.into_remainder() {
        *v = exp((*v - max) * scale);
        sum += *v;
    }
    let inv = 1.0 / (sum + sums.iter().sum::<f32>());
    row.iter_mut().for_each(|v| *v *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The padded, masked computation of `BertSelfAttention`, in f64.
    fn reference(qkv: &[f32], seq: Range<usize>, hidden: usize, count: usize, query: usize) -> Vec<f64> {
        let d = hidden / count;
        let stride = 3 * hidden;
        let mut out = vec![0.0; hidden];
        for head in 0..count {
            let at = |row: usize, part: usize, i: usize| qkv[row * stride + part * hidden + head * d + i] as f64;
            let scores: Vec<f64> = seq
                .clone()
                .map(|j| (0..d).map(|i| at(query, 0, i) * at(j, 1, i)).sum::<f64>() / (d as f64).sqrt())
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = weights.iter().sum();
            for i in 0..d {
                out[head * d + i] = seq.clone().zip(&weights).map(|(j, w)| w / sum * at(j, 2, i)).sum();
            }
        }
        out
    }

    #[test]
    fn softmax_rows_of_every_length_sum_to_one() {
        for len in [1, 2, 15, 16, 17, 100, 256, 511] {
            let xs: Vec<f32> = (0..len).map(|i| ((i * 7919 % 263) as f32 - 131.0) * 0.1).collect();
            let scale = 0.17;
            let max = xs.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let weights: Vec<f64> = xs.iter().map(|&x| ((x as f64 - max) * scale as f64).exp()).collect();
            let sum: f64 = weights.iter().sum();
            let mut row = xs.clone();
            softmax(&mut row, scale);
            for (got, w) in row.iter().zip(&weights) {
                assert!((*got as f64 - w / sum).abs() < 1e-6, "len {len}: {got} vs {}", w / sum);
            }
        }
    }

    #[test]
    fn each_sequence_attends_to_its_own_rows() {
        let (hidden, count) = (48, 3);
        let seqs = [0..5, 5..6, 6..23];
        let rows = 23;
        let qkv: Vec<f32> = (0..rows * 3 * hidden)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 2.0)
            .collect();
        let heads = Heads { count, hidden };
        for first_only in [false, true] {
            let out_rows = if first_only { seqs.len() } else { rows };
            let mut out = vec![0.0; out_rows * hidden];
            self_attention(&qkv, &seqs, &heads, first_only, None, &mut out);
            let mut row = 0;
            for seq in &seqs {
                let queries = if first_only {
                    seq.start..seq.start + 1
                } else {
                    seq.clone()
                };
                for query in queries {
                    let want = reference(&qkv, seq.clone(), hidden, count, query);
                    for (got, want) in out[row * hidden..][..hidden].iter().zip(&want) {
                        assert!((*got as f64 - want).abs() < 1e-5, "row {row}: {got} vs {want}");
                    }
                    row += 1;
                }
            }
        }
    }
}
