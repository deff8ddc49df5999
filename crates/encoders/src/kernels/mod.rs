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

/// The kernel path named by `SIEVE_KERNEL` (`scalar`, `avx2`, `avxvnni`, `avx512`,
/// `avx512vnni`, `amx`, `avx512bf16`), lower-cased; `None` when unset or blank.
pub(crate) fn requested_path() -> Option<String> {
    std::env::var("SIEVE_KERNEL")
        .ok()
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
}
