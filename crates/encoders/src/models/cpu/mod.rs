//! Host kernels for the CPU backend where burn's `flex` falls short.
//!
//! `flex` evaluates `erf` with scalar `libm` calls, which made the exact GELU of the
//! feed-forward blocks a quarter of all-MiniLM-L6-v2's encode time on our CI machine. The GELU
//! here fuses the bias add, evaluates `erfc` with a rational-exponential approximation
//! (Numerical Recipes' `erfcc`, fractional error < 1.2e-7) and a Cephes-style `exp`, in loops
//! the compiler vectorises (AVX-512 or AVX2 picked at run time), split over the rayon pool.
//! SPLADE's pooling folds each slice of vocabulary logits into a running maximum in place,
//! instead of materialising masked copies of `[batch, seq, vocab]` tensors.

pub(crate) mod attention;
#[cfg(feature = "train")]
pub(crate) mod autodiff;
pub(crate) mod encoder;
pub(crate) mod linear;
pub(crate) mod lm_head;

use burn::nn::Linear;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

/// Rows handed to one rayon task; small enough to split a batch over both cores.
const ROWS_PER_TASK: usize = 64;

/// `true` when `t` lives on burn's CPU backend, where these kernels apply.
pub(crate) fn on_cpu<const D: usize>(t: &Tensor<D>) -> bool {
    // An autodiff device over flex compares equal to flex, but the host kernels would cut its graph.
    !t.is_autodiff() && t.device() == burn::tensor::Device::flex()
}

/// `gelu(x · W + b)` for `linear` on the CPU: one matmul, then bias and the exact GELU in a
/// single pass over the output.
pub(crate) fn linear_gelu<const D: usize>(linear: &Linear, x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    let y = x.matmul(linear.weight.val().unsqueeze());
    let shape = y.shape();
    let width = shape[D - 1];
    let bias = linear.bias.as_ref().map(|b| {
        b.val()
            .into_data()
            .try_into_vec::<f32>()
            .expect("weights are converted to f32 at load")
    });
    let mut values = y.into_data().try_into_vec::<f32>().expect("activations are f32");
    values.par_chunks_mut(width * ROWS_PER_TASK).for_each(|chunk| {
        for row in chunk.chunks_exact_mut(width) {
            match &bias {
                Some(b) => gelu_bias_row(row, b),
                None => gelu_row(row),
            }
        }
    });
    Tensor::from_data(TensorData::new(values, shape), &device)
}

/// `max_t (x[t] · W)` over the positions where `mask` is non-zero, `[batch, seq, hidden]` →
/// `[batch, vocab]`, multiplying `rows_per_batch` positions of every text at a time.
pub(crate) fn masked_max_matmul(
    x: Tensor<3>,
    weight: &Tensor<2>,
    mask: &Tensor<2>,
    rows_per_batch: usize,
) -> Tensor<2> {
    let device = x.device();
    let [batch, seq, hidden] = x.dims();
    let vocab = weight.dims()[1];
    let mask = mask
        .clone()
        .into_data()
        .try_into_vec::<f32>()
        .expect("the attention mask is f32");
    let mut pooled = vec![f32::NEG_INFINITY; batch * vocab];
    for start in (0..seq).step_by(rows_per_batch.max(1)) {
        let len = rows_per_batch.min(seq - start);
        let rows = x.clone().narrow(1, start, len).reshape([batch * len, hidden]);
        let logits = rows
            .matmul(weight.clone())
            .into_data()
            .try_into_vec::<f32>()
            .expect("logits are f32");
        pooled.par_chunks_mut(vocab).enumerate().for_each(|(b, out)| {
            for t in (0..len).filter(|t| mask[b * seq + start + t] != 0.0) {
                let row = &logits[(b * len + t) * vocab..][..vocab];
                out.iter_mut().zip(row).for_each(|(o, &v)| *o = o.max(v));
            }
        });
    }
    Tensor::from_data(TensorData::new(pooled, [batch, vocab]), &device)
}

fn gelu_bias_row(row: &mut [f32], bias: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F, checked just above.
        return unsafe { gelu_bias_avx512(row, bias) };
    } else if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        return unsafe { gelu_bias_avx2(row, bias) };
    }
    gelu_bias_portable(row, bias)
}

/// `gelu` in place, vectorised like [`gelu_bias_row`].
pub(crate) fn gelu_row(row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F, checked just above.
        return unsafe { gelu_avx512(row) };
    } else if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        return unsafe { gelu_avx2(row) };
    }
    gelu_portable(row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gelu_avx512(row: &mut [f32]) {
    avx512::gelu_rows(row, None)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(row: &mut [f32]) {
    gelu_portable(row)
}

#[inline(always)]
fn gelu_portable(row: &mut [f32]) {
    row.iter_mut().for_each(|v| *v = gelu(*v));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gelu_bias_avx512(row: &mut [f32], bias: &[f32]) {
    avx512::gelu_rows(row, Some(bias))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_bias_avx2(row: &mut [f32], bias: &[f32]) {
    gelu_bias_portable(row, bias)
}

#[inline(always)]
fn gelu_bias_portable(row: &mut [f32], bias: &[f32]) {
    for (v, b) in row.iter_mut().zip(bias) {
        *v = gelu(*v + b);
    }
}

/// [`gelu`] and [`exp`] in AVX-512 intrinsics: the same formulas with fused multiply-adds, and
/// the division of `erfc` replaced by `vrcp14ps` and one Newton step (relative error about
/// 2⁻²⁸), which the compiler cannot do on its own. This division had made GELU the costliest
/// step after the matrix products in int8.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use std::arch::x86_64::*;

    /// `eˣ` for 16 lanes, as [`super::exp`].
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn exp(x: __m512) -> __m512 {
        const ROUND: f32 = 12_582_912.0;
        let x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0)), _mm512_set1_ps(88.0));
        let shifted = _mm512_fmadd_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E), _mm512_set1_ps(ROUND));
        let n = _mm512_sub_ps(shifted, _mm512_set1_ps(ROUND));
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm512_set1_ps(1.987_569_1e-4);
        for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let e = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0));
        let n_bits = _mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_set1_epi32(ROUND.to_bits() as i32));
        let scale = _mm512_slli_epi32::<23>(_mm512_add_epi32(n_bits, _mm512_set1_epi32(127)));
        _mm512_mul_ps(e, _mm512_castsi512_ps(scale))
    }

    /// The exact GELU for 16 lanes, as [`super::gelu`].
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn gelu(x: __m512) -> __m512 {
        // Past |z| = 10 erfc is 0 in f32; the bound keeps 1 + z/2 finite for infinite inputs.
        let z = _mm512_min_ps(
            _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2)),
            _mm512_set1_ps(1e10),
        );
        let d = _mm512_fmadd_ps(z, _mm512_set1_ps(0.5), _mm512_set1_ps(1.0));
        let r = _mm512_rcp14_ps(d);
        let t = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0)));
        let mut poly = _mm512_set1_ps(0.170_872_77);
        for c in [
            -0.822_152_23,
            1.488_515_9,
            -1.135_204,
            0.278_868_07,
            -0.186_288_06,
            0.096_784_18,
            0.374_091_96,
            1.000_023_7,
            -1.265_512_2,
        ] {
            poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(c));
        }
        let erfc = _mm512_mul_ps(t, exp(_mm512_fnmadd_ps(z, z, poly)));
        let positive = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, _mm512_setzero_ps());
        let one_plus_erf = _mm512_mask_blend_ps(positive, erfc, _mm512_sub_ps(_mm512_set1_ps(2.0), erfc));
        _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5)), one_plus_erf)
    }

    /// The lanes of a 16-wide block starting at `i` that lie inside `len`.
    #[inline]
    fn mask(i: usize, len: usize) -> u16 {
        if len - i >= 16 {
            u16::MAX
        } else {
            (1u16 << (len - i)) - 1
        }
    }

    /// `row = gelu(row + bias)` (bias as long as `row`, or none).
    #[target_feature(enable = "avx512f")]
    pub(crate) fn gelu_rows(row: &mut [f32], bias: Option<&[f32]>) {
        let len = row.len();
        if let Some(bias) = bias {
            assert!(bias.len() >= len, "gelu: bias shorter than the row");
        }
        for i in (0..len).step_by(16) {
            let m = mask(i, len);
            // SAFETY: the masked lanes `i .. min(i + 16, len)` lie inside `row` and `bias`.
            unsafe {
                let mut x = _mm512_maskz_loadu_ps(m, row.as_ptr().add(i));
                if let Some(bias) = bias {
                    x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, bias.as_ptr().add(i)));
                }
                _mm512_mask_storeu_ps(row.as_mut_ptr().add(i), m, gelu(x));
            }
        }
    }

    /// softmax(`scale` · row) in place.
    #[target_feature(enable = "avx512f")]
    pub(crate) fn softmax(row: &mut [f32], scale: f32) {
        let len = row.len();
        let p = row.as_mut_ptr();
        // SAFETY: every access covers the masked lanes `i .. min(i + 16, len)` of `row`.
        unsafe {
            let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
            for i in (0..len).step_by(16) {
                let v = _mm512_mask_loadu_ps(_mm512_set1_ps(f32::NEG_INFINITY), mask(i, len), p.add(i));
                max = _mm512_max_ps(max, v);
            }
            let max = _mm512_set1_ps(_mm512_reduce_max_ps(max));
            let scale = _mm512_set1_ps(scale);
            let mut sum = _mm512_setzero_ps();
            for i in (0..len).step_by(16) {
                let m = mask(i, len);
                let v = _mm512_maskz_loadu_ps(m, p.add(i));
                let e = _mm512_maskz_mov_ps(m, exp(_mm512_mul_ps(_mm512_sub_ps(v, max), scale)));
                _mm512_mask_storeu_ps(p.add(i), m, e);
                sum = _mm512_add_ps(sum, e);
            }
            let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(sum));
            for i in (0..len).step_by(16) {
                let m = mask(i, len);
                _mm512_mask_storeu_ps(p.add(i), m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p.add(i)), inv));
            }
        }
    }
}

/// The exact GELU, `x/2 · (1 + erf(x/√2))`, written as `x/2 · erfc(-x/√2)` so that negative
/// inputs suffer no cancellation.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    let e = erfc_abs(x * std::f32::consts::FRAC_1_SQRT_2);
    let one_plus_erf = if x >= 0.0 { 2.0 - e } else { e };
    0.5 * x * one_plus_erf
}

/// `erfc(|z|)`, Numerical Recipes' Chebyshev fit (fractional error < 1.2e-7).
#[inline(always)]
pub(crate) fn erfc_abs(z: f32) -> f32 {
    let z = z.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204 + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t * exp(-z * z + poly)
}

/// `eˣ` to about one ulp: Cody–Waite reduction by ln 2, Cephes' `expf` polynomial, and the
/// exponent written straight into the bits (no table, no branch, so it vectorises).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 0.166_666_65) * r
        + 0.5;
    let e = p * r * r + r + 1.0;
    // n sits in the low mantissa bits of `shifted`: reading it there keeps the loop in vector
    // registers (a float-to-int cast is scalarised for its saturation checks).
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    e * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gelu_reference(x: f64) -> f64 {
        0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
    }

    #[test]
    fn gelu_matches_the_erf_definition() {
        let mut worst = 0.0f64;
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4; // [-20, 20]
            let err = (gelu(x) as f64 - gelu_reference(x as f64)).abs();
            worst = worst.max(err / (x.abs() as f64).max(1.0));
        }
        assert!(worst < 4e-7, "worst scaled error {worst:e}");
    }

    #[test]
    fn exp_is_accurate_over_the_range_gelu_uses() {
        for i in -8_700..=8_800 {
            let x = i as f32 * 0.01;
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            assert!((got - want).abs() <= 3e-7 * want, "exp({x}) = {got}, want {want}");
        }
    }

    #[test]
    fn extremes_stay_finite() {
        assert_eq!(gelu(-1e30), 0.0);
        assert_eq!(gelu(1e30), 1e30);
        assert_eq!(gelu(0.0), 0.0);
    }

    #[test]
    fn dispatched_rows_agree_with_the_portable_loop() {
        let xs: Vec<f32> = (0..1001).map(|i| (i as f32 - 500.0) * 0.013).collect();
        let bias: Vec<f32> = (0..1001).map(|i| (i % 7) as f32 * 0.1).collect();
        let (mut fast, mut plain) = (xs.clone(), xs);
        gelu_bias_row(&mut fast, &bias);
        gelu_bias_portable(&mut plain, &bias);
        for (f, p) in fast.iter().zip(&plain) {
            assert!((f - p).abs() <= 4e-7 * p.abs().max(1.0), "{f} vs {p}");
        }
    }

    /// The dispatched row (AVX-512 intrinsics where the CPU has them) against the definition,
    /// at the bound the portable `gelu` meets, and its extremes.
    #[test]
    fn dispatched_gelu_matches_the_erf_definition() {
        let mut xs: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 1e-4).collect();
        let want: Vec<f64> = xs.iter().map(|&x| gelu_reference(x as f64)).collect();
        gelu_row(&mut xs);
        let worst = xs
            .iter()
            .zip(&want)
            .enumerate()
            .map(|(i, (&got, &want))| {
                let x = (i as f64 - 200_000.0) * 1e-4;
                (got as f64 - want).abs() / x.abs().max(1.0)
            })
            .fold(0.0, f64::max);
        assert!(worst < 4e-7, "worst scaled error {worst:e}");
        let mut extremes = [-1e30, 1e30, 0.0, f32::INFINITY, -f32::MAX, f32::MAX];
        gelu_row(&mut extremes);
        assert_eq!(extremes[..4], [0.0, 1e30, 0.0, f32::INFINITY]);
        assert!(extremes[4] == 0.0 && extremes[5] == f32::MAX, "{extremes:?}");
    }
}
