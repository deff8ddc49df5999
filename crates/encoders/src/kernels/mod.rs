//! Matrix kernels for the CPU forward pass: packed f32, int8 and bf16 GEMMs whose SIMD path is
//! picked at run time (`SIEVE_KERNEL` forces one, for tests and benchmarks).

// Each kernel's packed matrices report their shape and path; not every accessor has a caller
// outside the kernels' own tests.
#[allow(dead_code)]
pub(crate) mod bf16gemm;
#[allow(dead_code)]
pub(crate) mod qgemm;
#[allow(dead_code)]
pub(crate) mod sgemm;

/// The widest vectors the row-wise kernels (activation quantization, LayerNorm) are compiled
/// for on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowSimd {
    Portable,
    /// AVX2 and FMA.
    Avx2,
    /// AVX-512 F and BW.
    Avx512,
}

impl RowSimd {
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") {
                return RowSimd::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return RowSimd::Avx2;
            }
        }
        RowSimd::Portable
    }
}

/// The kernel path named by `SIEVE_KERNEL` (`scalar`, `avx2`, `avxvnni`, `avx512`,
/// `avx512vnni`, `amx`, `avx512bf16`), lower-cased; `None` when unset or blank.
pub(crate) fn requested_path() -> Option<String> {
    std::env::var("SIEVE_KERNEL")
        .ok()
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
}
