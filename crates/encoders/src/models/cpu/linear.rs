//! A Linear layer whose weights are packed once at load for the GEMM of the chosen precision.

use burn::nn::Linear;

use crate::device::Dtype;
use crate::kernels::bf16gemm::{PackedBf16, bf16_gemm};
use crate::kernels::qgemm::{PackedI8, qgemm_f32};
use crate::kernels::sgemm::{PackedF32, sgemm};

/// Packed weights in the arithmetic the model was loaded with.
enum Weights {
    F32(PackedF32),
    /// Dynamic quantization: weights int8 per output channel, activations per row at run time.
    Int8(PackedI8),
    Bf16(PackedBf16),
}

/// `y = x · W + b` on the host, `W` `[d_in, d_out]` packed for its kernel.
pub(crate) struct CpuLinear {
    weights: Weights,
    bias: Vec<f32>,
    d_in: usize,
    d_out: usize,
}

impl CpuLinear {
    /// Packs `weight` (`[d_in, d_out]`, row-major) and `bias` (`d_out`) for `dtype`.
    pub(crate) fn new(weight: &[f32], bias: Vec<f32>, d_in: usize, d_out: usize, dtype: Dtype) -> Self {
        assert_eq!(weight.len(), d_in * d_out, "weight is not [{d_in}, {d_out}]");
        assert_eq!(bias.len(), d_out, "bias is not [{d_out}]");
        let weights = match dtype {
            Dtype::Int8 => Weights::Int8(PackedI8::quantize(weight, d_in, d_out)),
            Dtype::Bf16 => Weights::Bf16(PackedBf16::pack(weight, d_in, d_out)),
            Dtype::F32 | Dtype::F16 => Weights::F32(PackedF32::pack(weight, d_in, d_out)),
        };
        Self {
            weights,
            bias,
            d_in,
            d_out,
        }
    }

    /// burn `Linear`s sharing their input, fused into one wider layer (their outputs side by
    /// side): Q, K and V become one GEMM.
    pub(crate) fn fused(linears: &[&Linear], dtype: Dtype) -> Self {
        let parts: Vec<(Vec<f32>, Vec<f32>, usize, usize)> = linears.iter().map(|l| host_linear(l)).collect();
        let d_in = parts[0].2;
        assert!(
            parts.iter().all(|p| p.2 == d_in),
            "fused layers must share their input width"
        );
        let d_out: usize = parts.iter().map(|p| p.3).sum();
        let mut weight = vec![0.0; d_in * d_out];
        let mut bias = Vec::with_capacity(d_out);
        let mut col = 0;
        for (w, b, _, out) in &parts {
            for (row, src) in w.chunks_exact(*out).enumerate() {
                weight[row * d_out + col..][..*out].copy_from_slice(src);
            }
            bias.extend_from_slice(b);
            col += out;
        }
        Self::new(&weight, bias, d_in, d_out, dtype)
    }

    /// A burn `Linear` (weight `[d_in, d_out]`, f32) repacked for `dtype`.
    pub(crate) fn from_burn(linear: &Linear, dtype: Dtype) -> Self {
        Self::fused(&[linear], dtype)
    }

    pub(crate) fn d_in(&self) -> usize {
        self.d_in
    }

    pub(crate) fn d_out(&self) -> usize {
        self.d_out
    }

    /// `out[m, d_out] = x[m, d_in] · W + b`, both row-major and contiguous.
    pub(crate) fn forward(&self, x: &[f32], m: usize, out: &mut [f32]) {
        assert!(
            x.len() >= m * self.d_in && out.len() >= m * self.d_out,
            "linear buffers too small for {m} rows"
        );
        if m == 0 {
            return;
        }
        let bias = Some(self.bias.as_slice());
        match &self.weights {
            Weights::F32(w) => sgemm(x, self.d_in, m, w, bias, out, self.d_out),
            Weights::Int8(w) => qgemm_f32(x, self.d_in, m, w, bias, out, self.d_out),
            Weights::Bf16(w) => bf16_gemm(x, self.d_in, m, w, bias, out, self.d_out),
        }
    }
}

/// Weight `[d_in, d_out]`, bias, `d_in`, `d_out` of a burn `Linear`, read back to the host.
fn host_linear(linear: &Linear) -> (Vec<f32>, Vec<f32>, usize, usize) {
    let [d_in, d_out] = linear.weight.val().dims();
    let weight = host(linear.weight.val());
    let bias = linear
        .bias
        .as_ref()
        .map(|b| host(b.val()))
        .unwrap_or_else(|| vec![0.0; d_out]);
    (weight, bias, d_in, d_out)
}

/// A float tensor's values as f32 on the host (weights are f32 on the CPU backend).
pub(crate) fn host<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.cast(burn::tensor::FloatDType::F32)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}
