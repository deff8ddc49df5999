//! Opt-in bf16 GEMM for the Linear layers of BERT-like encoders, on CPUs with AVX-512 BF16.
//!
//! # Scheme
//!
//! `C[m, n] = bf16(A)[m, k] · bf16(W)[k, n] (+ bias[n])`, accumulated in f32 by `vdpbf16ps`
//! (`_mm512_dpbf16_ps`). Weights are rounded to bf16 once, at load ([`PackedBf16::pack`]);
//! activations are rounded per call. Both roundings are round-to-nearest-even with the
//! `vcvtne(2)ps2bf16` conventions ([`round_bf16`]): f32 subnormals become signed zeros, NaN stays
//! NaN (quieted), overflow past the largest bf16 goes to infinity.
//!
//! # Layout
//!
//! * k is padded with zeros to an even length `2·kp`; `vdpbf16ps` consumes k in pairs.
//! * Packed weights: panels of [`NR`] = 32 columns (the last one zero-padded); inside a panel,
//!   k-pair `p` is stored as 32 columns × 2 bf16 `(w[2p][j], w[2p+1][j])`, i.e. 64 `u16` = two
//!   zmm operands of `vdpbf16ps`, 64-byte aligned.
//! * Activations: per task and per k-block of [`KC`] values, each [`MR`]-row tile of A is converted
//!   once (not once per column panel) into a thread-local buffer laid out `[pair][row]`, one `u32`
//!   (two bf16, even k in the low/first half) per row, so the micro-kernel broadcasts each pair
//!   with one 32-bit broadcast at a constant offset.
//! * Micro-tile [`MR`]×[`NR`] = 12×32: 24 zmm accumulators + 2 B operands + 1 broadcast of 32.
//! * Loops per task: k-block → convert the task's A rows → column panel (its kc×32 B sub-panel
//!   stays in L1) → 12-row tile. Partial k-blocks are stored to C and reloaded, which is exact,
//!   so blocking never changes the per-lane accumulation order.
//!
//! # Dispatch
//!
//! One generic micro-kernel and activation-packing routine, generic over the `unsafe trait`
//! [`Bf16Simd`], implemented twice:
//! * `Emu`: arrays of lanes and an exact scalar model of `vdpbf16ps` ([`dp_step`]). It is the
//!   reference for the tests and is never picked for speed.
//! * `Avx512` (x86-64): one-line wrappers over `core::arch` intrinsics, run inside a
//!   `#[target_feature(enable = "avx512f,avx512bf16")]` function.
//!
//! [`PackedBf16`] records its path; [`PackedBf16::pack`] takes the native one when the CPU has
//! it (`SIEVE_KERNEL=scalar`/`emulated` forces the emulation, `avx512bf16` asks for the native
//! path and is ignored where the CPU lacks it). [`bf16_gemm`] runs on the rayon global pool,
//! over blocks of up to 96 rows, and also over groups of column panels when m is small.
//!
//! # What `vdpbf16ps` does, and how it is emulated
//!
//! Intel's pseudo-code (ISA Extensions Programming Reference, May 2019, VDPBF16PS; the intrinsic
//! `_mm512_dpbf16_ps(src, a, b)` is that instruction with `a` = src1, `b` = src2), per lane `i`:
//!
//! ```text
//! // FP32 FMA with daz in, ftz out and RNE rounding. MXCSR neither consulted nor updated.
//! dst.fp32[i] += make_fp32(a.bf16[2i+1]) * make_fp32(b.bf16[2i+1])
//! dst.fp32[i] += make_fp32(a.bf16[2i+0]) * make_fp32(b.bf16[2i+0])
//! ```
//!
//! So: the odd element's product is added first, then the even one; each step is a fused
//! multiply-add (the product is not rounded on its own; a bf16×bf16 product has at most 16
//! significant bits, so it is exact in f32 anyway unless it leaves f32's normal range); input
//! denormals are read as zero and denormal results are flushed to zero. [`dp_step`] reproduces
//! one such step exactly (see its comment for why an f64 sum rounded once to f32 is exact here),
//! including DAZ/FTZ, taking tininess after rounding (the x86 SSE rule; what `vdpbf16ps` does for
//! results within 2^-25 relative of the smallest normal is not documented). NaN payloads are
//! not modelled: a NaN result is some NaN.
//!
//! # Verified here, and not
//!
//! The development machine (AMD EPYC, AVX2 only) cannot run AVX-512. Verified here: the
//! emulation of one step against `f32::mul_add` (an exact FMA) on random and edge inputs; the
//! emulated GEMM bit-for-bit against a plain per-element loop of [`dp_step`], and within the
//! rounding bounds against f64 products of the bf16-rounded and of the original inputs, over
//! awkward shapes, strides and bias; the AVX-512 code compiles (and its inner loop was read in
//! the assembly: 24 `vdpbf16ps` on zmm accumulators, 12 `vbroadcastss`, 2 B loads, no spills). Not verified
//! here: running the native path. Its tests (native conversion equals [`round_bf16`], one
//! `vdpbf16ps` against [`dp_step`], native GEMM against the emulation) print `skipped:` on a CPU
//! without AVX-512 BF16 and run wherever it is present. If the hardware follows the pseudo-code
//! the two paths agree bit for bit; the tests only require the f32 accumulation bound
//! `|native − emulated| ≤ 2·(2·kp + 1)·2^-24·(Σ|a·b| + |bias|)` and print the exact-match count.

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

/// Rows of the micro-tile.
const MR: usize = 12;
/// Columns of the micro-tile and of a packed weight panel (two zmm of 16 f32 lanes).
const NR: usize = 32;
/// f32 lanes of one vector.
const LANES: usize = 16;
/// k values per block (a multiple of 32 so blocks convert with whole vectors).
const KC: usize = 384;
/// k pairs per block.
const KCP: usize = KC / 2;
/// Micro-tiles of rows per task at most: 96 rows, an A block of 96 × 384 bf16 = 72 KiB (L2).
const MC_TILES: usize = 8;
/// Below this many multiply-adds the tasks run on the calling thread.
const SERIAL_WORK: usize = 1 << 20;

/// A way of running the bf16 kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bf16Path {
    /// Portable emulation of `vdpbf16ps`: the reference for tests, never chosen for speed.
    Emulated,
    /// AVX-512 BF16 (`vdpbf16ps`, `vcvtne2ps2bf16`) on zmm registers.
    Avx512Bf16,
}

impl Bf16Path {
    /// `Avx512Bf16` when the CPU has avx512f + avx512bf16, else `None`.
    pub(crate) fn native() -> Option<Bf16Path> {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16") {
                return Some(Bf16Path::Avx512Bf16);
            }
        }
        None
    }

    /// Paths this CPU can run (`Emulated` always).
    pub(crate) fn available() -> Vec<Bf16Path> {
        let mut paths = vec![Bf16Path::Emulated];
        paths.extend(Bf16Path::native());
        paths
    }

    /// Lower-case name, as `SIEVE_KERNEL` spells it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Bf16Path::Emulated => "emulated",
            Bf16Path::Avx512Bf16 => "avx512bf16",
        }
    }

    /// The native path, unless `SIEVE_KERNEL` forces the emulation (`scalar`, `emulated`).
    fn preferred() -> Bf16Path {
        let native = Bf16Path::native();
        match super::requested_path().as_deref() {
            Some("scalar" | "emulated") => Bf16Path::Emulated,
            _ => native.unwrap_or(Bf16Path::Emulated),
        }
    }
}

/// Whether this CPU can run bf16 at speed: `None` if it can, else why not.
pub(crate) fn unsupported_reason() -> Option<String> {
    if Bf16Path::native().is_some() {
        None
    } else if cfg!(target_arch = "x86_64") {
        Some("this CPU lacks AVX-512 BF16 (vdpbf16ps)".to_string())
    } else {
        Some("bf16 kernels need an x86-64 CPU with AVX-512 BF16 (vdpbf16ps)".to_string())
    }
}

/// Rounds an f32 to bf16 bits the way `vcvtneps2bf16` does: nearest, ties to even; zero and
/// subnormal inputs give a zero of the same sign; infinities stay; NaN stays NaN (quieted).
pub(crate) fn round_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let abs = bits & 0x7fff_ffff;
    if abs > 0x7f80_0000 {
        // NaN: truncate, set the top mantissa bit so a signalling payload cannot become infinity.
        return (bits >> 16) as u16 | 0x0040;
    }
    if abs < 0x0080_0000 {
        return (bits >> 16) as u16 & 0x8000;
    }
    // Normal or infinite: adding 0x7fff (+1 when the kept lsb is odd) carries into the kept half
    // exactly when the dropped half is above one half, or equal to it with an odd kept lsb.
    // No overflow: the largest operand is 0xff7f_ffff + 0x8000.
    let lsb = (bits >> 16) & 1;
    ((bits + 0x7fff + lsb) >> 16) as u16
}

/// bf16 bits as f32 (exact).
fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// bf16 bits as f32, denormals read as signed zero (the DAZ of `vdpbf16ps`).
fn bf16_daz(h: u16) -> f32 {
    let h = if h & 0x7f80 == 0 { h & 0x8000 } else { h };
    bf16_to_f32(h)
}

/// One step of `vdpbf16ps` on one lane: `acc + a·b` rounded once to f32 (nearest even), with
/// denormal inputs read as zero and tiny results flushed to a signed zero.
///
/// Exactness: `p = a·b` is exact in f64 (16 significant bits, exponent far inside f64's range).
/// `x = acc + p` in f64 is exact unless the operands' exponents are so far apart that the smaller
/// is below 2^-29 of the larger; then both `x` and the exact sum lie well inside half an f32 ulp
/// of the larger operand, which is itself an f32, so rounding `x` to f32 gives the correctly
/// rounded sum (no double-rounding tie can arise). A tiny result (below 2^-126) only comes from
/// `acc = 0` or a cancellation, both exact in f64.
fn dp_step(acc: f32, a: u16, b: u16) -> f32 {
    /// 2^200: scales any tiny f64 sum here into f32's normal range, exactly.
    const SCALE: f64 = f64::from_bits((1023 + 200) << 52);
    let acc = if acc.is_subnormal() { 0.0_f32.copysign(acc) } else { acc };
    let p = f64::from(bf16_daz(a)) * f64::from(bf16_daz(b));
    let x = f64::from(acc) + p;
    let min_normal = f64::from(f32::MIN_POSITIVE);
    if x != 0.0 && x.abs() < min_normal {
        // FTZ, tininess after rounding: tiny unless rounding to 24 bits with an unbounded
        // exponent reaches the smallest normal.
        let unbounded = f64::from(((x * SCALE) as f32).abs());
        let out = if unbounded < min_normal * SCALE {
            0.0
        } else {
            f32::MIN_POSITIVE
        };
        return out.copysign(x as f32);
    }
    x as f32
}

/// SIMD operations the kernels are written in: 16 f32 lanes (`F`) and 32 bf16 lanes (`H`).
///
/// # Safety
///
/// Implementations may need CPU features: callers must only use an implementation whose
/// features this CPU has, and pass pointers valid for the accesses each method documents.
/// bf16 lanes are in memory order (lane `2i` is the even-k element of f32 lane `i`).
unsafe trait Bf16Simd {
    type F: Copy;
    type H: Copy;
    /// All lanes zero.
    unsafe fn zero() -> Self::F;
    /// Reads 16 f32 from `p` (no alignment needed).
    unsafe fn load_f32(p: *const f32) -> Self::F;
    /// Writes 16 f32 to `p` (no alignment needed).
    unsafe fn store_f32(p: *mut f32, v: Self::F);
    /// Lane-wise f32 sum.
    unsafe fn add(a: Self::F, b: Self::F) -> Self::F;
    /// Rounds 32 f32 to bf16: lanes 0..16 from `lo`, 16..32 from `hi` (`vcvtne2ps2bf16`).
    unsafe fn cvt2(hi: Self::F, lo: Self::F) -> Self::H;
    /// Reads 32 bf16 from `p` (no alignment needed).
    unsafe fn load_h(p: *const u16) -> Self::H;
    /// Writes 32 bf16 to `p` (no alignment needed).
    unsafe fn store_h(p: *mut u16, v: Self::H);
    /// Reads the two bf16 at `p` (4-byte aligned) and repeats them into all 16 pairs.
    unsafe fn bcast_pair(p: *const u32) -> Self::H;
    /// `vdpbf16ps`: lane `i` of `acc` plus `a[2i+1]·b[2i+1]`, then plus `a[2i]·b[2i]`.
    unsafe fn dpbf16(acc: Self::F, a: Self::H, b: Self::H) -> Self::F;
}

/// The portable emulation: plain arrays of lanes.
struct Emu;

// SAFETY: no CPU features needed; every pointer access is an unaligned read or write of exactly
// the size documented on the trait (the u32 broadcast reads two u16 from a u32 pointer).
unsafe impl Bf16Simd for Emu {
    type F = [f32; LANES];
    type H = [u16; 2 * LANES];

    #[inline(always)]
    unsafe fn zero() -> Self::F {
        [0.0; LANES]
    }

    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> Self::F {
        // SAFETY: the caller guarantees 16 readable f32 at p.
        unsafe { p.cast::<Self::F>().read_unaligned() }
    }

    #[inline(always)]
    unsafe fn store_f32(p: *mut f32, v: Self::F) {
        // SAFETY: the caller guarantees 16 writable f32 at p.
        unsafe { p.cast::<Self::F>().write_unaligned(v) }
    }

    #[inline(always)]
    unsafe fn add(a: Self::F, b: Self::F) -> Self::F {
        std::array::from_fn(|i| a[i] + b[i])
    }

    #[inline(always)]
    unsafe fn cvt2(hi: Self::F, lo: Self::F) -> Self::H {
        std::array::from_fn(|i| round_bf16(if i < LANES { lo[i] } else { hi[i - LANES] }))
    }

    #[inline(always)]
    unsafe fn load_h(p: *const u16) -> Self::H {
        // SAFETY: the caller guarantees 32 readable u16 at p.
        unsafe { p.cast::<Self::H>().read_unaligned() }
    }

    #[inline(always)]
    unsafe fn store_h(p: *mut u16, v: Self::H) {
        // SAFETY: the caller guarantees 32 writable u16 at p.
        unsafe { p.cast::<Self::H>().write_unaligned(v) }
    }

    #[inline(always)]
    unsafe fn bcast_pair(p: *const u32) -> Self::H {
        // SAFETY: the caller guarantees 4 readable bytes at p; read as two u16 in memory order.
        let pair = unsafe { p.cast::<[u16; 2]>().read_unaligned() };
        std::array::from_fn(|i| pair[i % 2])
    }

    #[inline(always)]
    unsafe fn dpbf16(acc: Self::F, a: Self::H, b: Self::H) -> Self::F {
        std::array::from_fn(|i| dp_step(dp_step(acc[i], a[2 * i + 1], b[2 * i + 1]), a[2 * i], b[2 * i]))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use core::arch::x86_64::{
        __m512, __m512bh, __m512i, _mm512_add_ps, _mm512_cvtne2ps_pbh, _mm512_dpbf16_ps, _mm512_loadu_ps,
        _mm512_loadu_si512, _mm512_set1_epi32, _mm512_setzero_ps, _mm512_storeu_ps, _mm512_storeu_si512,
    };
    use core::mem::transmute;

    /// AVX-512 BF16 on zmm registers.
    pub(super) struct Avx512;

    // SAFETY: every method needs avx512f + avx512bf16 (their target_feature says so; the trait
    // contract makes the caller check the CPU); pointer accesses are the documented sizes.
    // `__m512i` and `__m512bh` are both 64 plain bytes, so the transmutes are bit casts.
    unsafe impl super::Bf16Simd for Avx512 {
        type F = __m512;
        type H = __m512bh;

        #[inline]
        #[target_feature(enable = "avx512f,avx512bf16")]
        unsafe fn zero() -> __m512 {
            _mm512_setzero_ps()
        }

        #[inline]
        #[target_feature(enable = "avx512f,avx512bf16")]
        unsafe fn load_f32(p: *const f32) -> __m512 {
            // SAFETY: the caller guarantees 16 readable f32 at p.
            unsafe { _mm512_loadu_ps(p) }
        }

        #[inline]
        #[target_feature(enable = "avx512f,avx512bf16")]
        unsafe fn store_f32(p: *mut f32, v: __m512) {
            // SAFETY: the caller guarantees 16 writable f32 at p.
            unsafe { _mm512_storeu_ps(p, v) }
        }

        #[inline]
        #[target_feature(enable = "avx512f,avx512bf16")]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            _mm512_add_ps(a, b)
        }

        #[inline]
        #[target_feature(enable = "avx512f,avx512bf16")]
        unsafe fn cvt2(hi: __m512, lo: __m512) -> __m512bh {
            _mm512_cvtne2ps_pbh(hi, lo)
        }

        #[inline]
        #[target_feature(enable = "avx512f,avx512bf16")]
        unsafe fn load_h(p: *const u16) -> __m512bh {
            // SAFETY: the caller guarantees 64 readable bytes at p; bit cast of 64 bytes.
            unsafe { transmute::<__m512i, __m512bh>(_mm512_loadu_si512(p.cast())) }
        }

        #[inline]
        #[target_feature(enable = "avx512f,avx512bf16")]
        unsafe fn store_h(p: *mut u16, v: __m512bh) {
            // SAFETY: the caller guarantees 64 writable bytes at p; bit cast of 64 bytes.
            unsafe { _mm512_storeu_si512(p.cast(), transmute::<__m512bh, __m512i>(v)) }
        }

        #[inline]
        #[target_feature(enable = "avx512f,avx512bf16")]
        unsafe fn bcast_pair(p: *const u32) -> __m512bh {
            // SAFETY: the caller guarantees an aligned readable u32 at p; bit cast of 64 bytes.
            unsafe { transmute::<__m512i, __m512bh>(_mm512_set1_epi32(p.read() as i32)) }
        }

        #[inline]
        #[target_feature(enable = "avx512f,avx512bf16")]
        unsafe fn dpbf16(acc: __m512, a: __m512bh, b: __m512bh) -> __m512 {
            _mm512_dpbf16_ps(acc, a, b)
        }
    }

    /// [`super::run_block`] compiled for AVX-512 BF16.
    ///
    /// # Safety
    ///
    /// The CPU must have avx512f and avx512bf16; the rest as [`super::run_block`].
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn run_block(
        job: &super::Job<'_>,
        rows: core::ops::Range<usize>,
        panels: core::ops::Range<usize>,
        buf: &mut Vec<u32>,
    ) {
        // SAFETY: forwarded from this function's contract; the features are enabled here.
        unsafe { super::run_block::<Avx512>(job, rows, panels, buf) }
    }

    /// [`super::convert_row`] compiled for AVX-512 BF16, for the tests.
    ///
    /// # Safety
    ///
    /// The CPU must have avx512f and avx512bf16.
    #[cfg(test)]
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn convert_row(src: &[f32], dst: &mut [u32]) {
        // SAFETY: the features are enabled here.
        unsafe { super::convert_row::<Avx512>(src, dst) }
    }
}

/// 32 bf16 (one k-pair of a 32-column panel is two of these), 64-byte aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u16; 2 * LANES]);

/// Linear weights `[k, n]` row-major (burn's `[d_in, d_out]`), rounded to bf16 and packed in
/// panels of 32 columns, each k-pair as 32 × 2 bf16 (see the module doc).
#[derive(Clone)]
pub(crate) struct PackedBf16 {
    /// Panel-major, then k-pair, then two `Line`s: `(panel · kp + pair) · 2 + half`.
    data: Vec<Line>,
    k: usize,
    n: usize,
    /// k pairs: `ceil(k / 2)`.
    kp: usize,
    path: Bf16Path,
}

impl std::fmt::Debug for PackedBf16 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedBf16")
            .field("k", &self.k)
            .field("n", &self.n)
            .field("path", &self.path)
            .finish()
    }
}

impl PackedBf16 {
    /// Packs for the native path when the CPU has one (see [`Bf16Path`]), else the emulation.
    pub(crate) fn pack(w: &[f32], k: usize, n: usize) -> Self {
        Self::pack_for(w, k, n, Bf16Path::preferred())
    }

    /// Packs for `path`, which this CPU must be able to run.
    pub(crate) fn pack_for(w: &[f32], k: usize, n: usize, path: Bf16Path) -> Self {
        assert!(
            k > 0 && n > 0,
            "bf16 weights need k > 0 and n > 0 (got k = {k}, n = {n})"
        );
        let len = k.checked_mul(n).expect("bf16 weights: k · n overflows usize");
        assert_eq!(
            w.len(),
            len,
            "bf16 weights: expected k · n = {k} · {n} values, got {}",
            w.len()
        );
        assert!(
            Bf16Path::available().contains(&path),
            "bf16 path {} is not available on this CPU",
            path.name()
        );
        let kp = k.div_ceil(2);
        let panels = n.div_ceil(NR);
        let mut data = vec![Line([0; 2 * LANES]); panels * kp * 2];
        for (pi, panel) in data.chunks_exact_mut(kp * 2).enumerate() {
            let col0 = pi * NR;
            for (pair, lines) in panel.chunks_exact_mut(2).enumerate() {
                for (half, line) in lines.iter_mut().enumerate() {
                    // This line holds columns col0 + 16·half .. + 16, two k values each.
                    for (slot, out) in line.0.iter_mut().enumerate() {
                        let col = col0 + half * LANES + slot / 2;
                        let kk = 2 * pair + slot % 2;
                        if col < n && kk < k {
                            *out = round_bf16(w[kk * n + col]);
                        }
                    }
                }
            }
        }
        PackedBf16 { data, k, n, kp, path }
    }

    /// Input width (rows of the weight matrix).
    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// Output width (columns of the weight matrix).
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// The path [`bf16_gemm`] runs these weights on.
    pub(crate) fn path(&self) -> Bf16Path {
        self.path
    }

    /// The `kcp` pairs from pair `pair0` of column panel `panel`: `kcp · 64` u16.
    fn panel_block(&self, panel: usize, pair0: usize, kcp: usize) -> &[Line] {
        let start = (panel * self.kp + pair0) * 2;
        &self.data[start..start + kcp * 2]
    }
}

/// The output pointer, shared by tasks that write disjoint tiles of C.
#[derive(Clone, Copy)]
struct CPtr(*mut f32);

// SAFETY: tasks only write disjoint elements of C through it (see `bf16_gemm`), and the borrow it
// comes from outlives the parallel loop.
unsafe impl Send for CPtr {}
// SAFETY: as above.
unsafe impl Sync for CPtr {}

impl CPtr {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// One checked GEMM call: `bf16_gemm`'s arguments after its assertions.
struct Job<'a> {
    a: &'a [f32],
    lda: usize,
    b: &'a PackedBf16,
    bias: Option<&'a [f32]>,
    c: CPtr,
    ldc: usize,
}

/// `C[m, n] = bf16(A)[m, k] · B (+ bias[n])`, A with row stride `lda`, C with row stride `ldc`
/// (overwritten; padding between rows untouched). Runs on the rayon global pool over blocks of
/// rows, and over groups of 32-column panels too when m is small.
pub(crate) fn bf16_gemm(
    a: &[f32],
    lda: usize,
    m: usize,
    b: &PackedBf16,
    bias: Option<&[f32]>,
    c: &mut [f32],
    ldc: usize,
) {
    let (k, n) = (b.k, b.n);
    assert!(lda >= k, "bf16_gemm: lda = {lda} is less than k = {k}");
    assert!(ldc >= n, "bf16_gemm: ldc = {ldc} is less than n = {n}");
    if let Some(bias) = bias {
        assert_eq!(bias.len(), n, "bf16_gemm: bias has {} values for n = {n}", bias.len());
    }
    if m == 0 {
        return;
    }
    let need = |ld: usize, w: usize| (m - 1).checked_mul(ld).and_then(|v| v.checked_add(w));
    let need_a = need(lda, k).expect("bf16_gemm: A extent overflows usize");
    let need_c = need(ldc, n).expect("bf16_gemm: C extent overflows usize");
    assert!(
        a.len() >= need_a,
        "bf16_gemm: A has {} values, needs {need_a} (m = {m}, lda = {lda})",
        a.len()
    );
    assert!(
        c.len() >= need_c,
        "bf16_gemm: C has {} values, needs {need_c} (m = {m}, ldc = {ldc})",
        c.len()
    );

    let job = Job {
        a,
        lda,
        b,
        bias,
        c: CPtr(c.as_mut_ptr()),
        ldc,
    };
    let n_panels = n.div_ceil(NR);
    let m_tiles = m.div_ceil(MR);
    let threads = rayon::current_num_threads().max(1);
    // Aim for two tasks per thread: blocks of up to 96 rows, then split the columns when
    // there are too few row blocks.
    let target = 2 * threads;
    let tiles_per_task = MC_TILES.min(m_tiles.div_ceil(target)).max(1);
    let row_blocks = m_tiles.div_ceil(tiles_per_task);
    let groups = if row_blocks >= target {
        1
    } else {
        n_panels.min(target.div_ceil(row_blocks))
    };
    let panels_per_task = n_panels.div_ceil(groups);
    let groups = n_panels.div_ceil(panels_per_task);
    let task = |t: usize| {
        let (rb, g) = (t / groups, t % groups);
        let r0 = rb * tiles_per_task * MR;
        let p0 = g * panels_per_task;
        let rows = r0..m.min(r0 + tiles_per_task * MR);
        let panels = p0..n_panels.min(p0 + panels_per_task);
        with_buffer(|buf| run_task(&job, rows, panels, buf));
    };
    let tasks = row_blocks * groups;
    if m.saturating_mul(n).saturating_mul(k) < SERIAL_WORK || threads == 1 {
        (0..tasks).for_each(task);
    } else {
        (0..tasks).into_par_iter().for_each(task);
    }
}

thread_local! {
    /// Per-thread bf16 activation block, reused across calls.
    static A_BUF: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's activation buffer (a fresh one if it is somehow in use).
fn with_buffer(f: impl FnOnce(&mut Vec<u32>)) {
    A_BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => f(&mut buf),
        Err(_) => f(&mut Vec::new()),
    });
}

/// One task on the path the weights were packed for.
fn run_task(job: &Job<'_>, rows: Range<usize>, panels: Range<usize>, buf: &mut Vec<u32>) {
    match job.b.path {
        // SAFETY: the emulation needs no CPU feature; `job` was checked by `bf16_gemm` and the
        // task's rows and panels are in range and disjoint from other tasks'.
        Bf16Path::Emulated => unsafe { run_block::<Emu>(job, rows, panels, buf) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `PackedBf16::pack_for` only records this path after detecting avx512f and
        // avx512bf16 on this CPU; the rest as above.
        Bf16Path::Avx512Bf16 => unsafe { avx512::run_block(job, rows, panels, buf) },
        #[cfg(not(target_arch = "x86_64"))]
        Bf16Path::Avx512Bf16 => unreachable!("avx512bf16 weights cannot be packed on this architecture"),
    }
}

/// Rounds `src` to bf16 pairs into `dst` (`src.len().div_ceil(2)` u32, even k first in memory;
/// an odd tail is padded with a zero bf16).
///
/// # Safety
///
/// The CPU must have `S`'s features.
#[inline(always)]
unsafe fn convert_row<S: Bf16Simd>(src: &[f32], dst: &mut [u32]) {
    assert_eq!(dst.len(), src.len().div_ceil(2), "convert_row: destination length");
    let out = dst.as_mut_ptr().cast::<u16>();
    let whole = src.len() / (2 * LANES);
    for i in 0..whole {
        let at = i * 2 * LANES;
        // SAFETY: at + 32 <= src.len() values are read; dst holds src.len().div_ceil(2) u32, so
        // at + 32 u16 fit; S's features are the caller's contract.
        unsafe {
            let lo = S::load_f32(src.as_ptr().add(at));
            let hi = S::load_f32(src.as_ptr().add(at + LANES));
            S::store_h(out.add(at), S::cvt2(hi, lo));
        }
    }
    for (j, &x) in src.iter().enumerate().skip(whole * 2 * LANES) {
        // SAFETY: j < src.len() <= 2 · dst.len() u16.
        unsafe { out.add(j).write(round_bf16(x)) };
    }
    if src.len() % 2 == 1 {
        // SAFETY: src.len() < 2 · dst.len() when src.len() is odd.
        unsafe { out.add(src.len()).write(0) };
    }
}

/// Computes C's rows `rows` × column panels `panels`.
///
/// # Safety
///
/// The CPU must have `S`'s features; `job` must come from `bf16_gemm`'s checks, `rows` lie in
/// `0..m` and `panels` in `0..ceil(n / 32)`, and no other thread may touch that part of C.
#[inline(always)]
unsafe fn run_block<S: Bf16Simd>(job: &Job<'_>, rows: Range<usize>, panels: Range<usize>, buf: &mut Vec<u32>) {
    let (k, n, kp) = (job.b.k, job.b.n, job.b.kp);
    let tiles = rows.len().div_ceil(MR);
    let mut row = [0u32; KCP];
    let mut pair0 = 0;
    while pair0 < kp {
        let kcp = KCP.min(kp - pair0);
        let (first, last) = (pair0 == 0, pair0 + kcp == kp);
        // This k-block of the task's rows, as bf16 pairs: tile t, pair q, row r at
        // (t · kcp + q) · MR + r. Rows past the end of the block stay zero.
        buf.clear();
        buf.resize(tiles * kcp * MR, 0);
        let (k0, k1) = (2 * pair0, k.min(2 * (pair0 + kcp)));
        for (i, ar) in rows.clone().enumerate() {
            let src = &job.a[ar * job.lda + k0..ar * job.lda + k1];
            // SAFETY: S's features are this function's contract.
            unsafe { convert_row::<S>(src, &mut row[..kcp]) };
            let tile = &mut buf[(i / MR) * kcp * MR..(i / MR + 1) * kcp * MR];
            for (q, &v) in row[..kcp].iter().enumerate() {
                tile[q * MR + i % MR] = v;
            }
        }
        for panel in panels.clone() {
            let col0 = panel * NR;
            let cols = NR.min(n - col0);
            let bp = job.b.panel_block(panel, pair0, kcp).as_ptr().cast::<u16>();
            let bias = job.bias.filter(|_| last).map(|bias| &bias[col0..col0 + cols]);
            for t in 0..tiles {
                let r0 = rows.start + t * MR;
                let nrows = MR.min(rows.end - r0);
                let ap = buf[t * kcp * MR..(t + 1) * kcp * MR].as_ptr();
                if nrows == MR && cols == NR {
                    let bias = bias.map_or(std::ptr::null(), <[f32]>::as_ptr);
                    // SAFETY: rows r0..r0 + 12 < m and columns col0..col0 + 32 <= n, within the
                    // C extent checked by bf16_gemm and owned by this task; ap and bp hold kcp
                    // pairs for 12 rows and 32 columns; bias (if any) has 32 values.
                    unsafe {
                        let cp = job.c.get().add(r0 * job.ldc + col0);
                        kernel::<S>(kcp, ap, bp, cp, job.ldc, !first, bias);
                    }
                } else {
                    let mut tile = [0.0f32; MR * NR];
                    let cp = job.c.get();
                    if !first {
                        for r in 0..nrows {
                            for j in 0..cols {
                                // SAFETY: row r0 + r < m, column col0 + j < n: inside C's checked
                                // extent, owned by this task.
                                tile[r * NR + j] = unsafe { cp.add((r0 + r) * job.ldc + col0 + j).read() };
                            }
                        }
                    }
                    // SAFETY: the tile is 12 × 32 with row stride 32; ap and bp as above.
                    unsafe { kernel::<S>(kcp, ap, bp, tile.as_mut_ptr(), NR, !first, std::ptr::null()) };
                    for r in 0..nrows {
                        for j in 0..cols {
                            let v = match bias {
                                Some(bias) => tile[r * NR + j] + bias[j],
                                None => tile[r * NR + j],
                            };
                            // SAFETY: as for the read above.
                            unsafe { cp.add((r0 + r) * job.ldc + col0 + j).write(v) };
                        }
                    }
                }
            }
        }
        pair0 += kcp;
    }
}

/// The 12×32 micro-kernel: `c = (accumulate ? c : 0) + a · b` over `kcp` k-pairs, then
/// `+ bias` when `bias` is not null.
///
/// # Safety
///
/// The CPU must have `S`'s features; `a` holds `kcp · 12` u32 (pair-major), `b` `kcp · 64` u16,
/// `c` 12 rows of 32 f32 at stride `ldc`, and `bias` (unless null) 32 f32.
#[inline(always)]
unsafe fn kernel<S: Bf16Simd>(
    kcp: usize,
    a: *const u32,
    b: *const u16,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    bias: *const f32,
) {
    // SAFETY (whole body): every access stays within the extents this function's contract gives.
    unsafe {
        let mut acc = [[S::zero(); 2]; MR];
        if accumulate {
            for (r, acc) in acc.iter_mut().enumerate() {
                acc[0] = S::load_f32(c.add(r * ldc));
                acc[1] = S::load_f32(c.add(r * ldc + LANES));
            }
        }
        for q in 0..kcp {
            let b0 = S::load_h(b.add(q * 2 * NR));
            let b1 = S::load_h(b.add(q * 2 * NR + 2 * LANES));
            let aq = a.add(q * MR);
            for (r, acc) in acc.iter_mut().enumerate() {
                let ar = S::bcast_pair(aq.add(r));
                acc[0] = S::dpbf16(acc[0], ar, b0);
                acc[1] = S::dpbf16(acc[1], ar, b1);
            }
        }
        if !bias.is_null() {
            let (bias0, bias1) = (S::load_f32(bias), S::load_f32(bias.add(LANES)));
            for acc in acc.iter_mut() {
                acc[0] = S::add(acc[0], bias0);
                acc[1] = S::add(acc[1], bias1);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            S::store_f32(c.add(r * ldc), acc[0]);
            S::store_f32(c.add(r * ldc + LANES), acc[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64: deterministic test data without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in [-1, 1).
        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }

        fn vec(&mut self, len: usize) -> Vec<f32> {
            (0..len).map(|_| self.unit()).collect()
        }
    }

    fn bf(x: f32) -> f32 {
        bf16_to_f32(round_bf16(x))
    }

    #[test]
    fn rounding_ties_to_even() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even 1.
        assert_eq!(round_bf16(1.0 + 2f32.powi(-8)), 0x3f80);
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up to the even one.
        assert_eq!(round_bf16(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
        // Just above / below a tie.
        assert_eq!(round_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(round_bf16(f32::from_bits(0x3f80_7fff)), 0x3f80);
        assert_eq!(round_bf16(-1.0 - 2f32.powi(-8)), 0xbf80);
        assert_eq!(round_bf16(f32::from_bits(0xbf81_8000)), 0xbf82);
        // Exact values stay.
        for x in [1.0f32, -2.5, 0.15625, f32::from_bits(0x7f7f_0000)] {
            assert_eq!(bf(x), x, "{x}");
        }
        // Carry into the exponent: 2 - 2^-9 rounds up to 2.
        assert_eq!(bf(2.0 - 2f32.powi(-9)), 2.0);
    }

    #[test]
    fn rounding_max_inf_subnormal_nan() {
        // The largest bf16 stays; f32::MAX is above it by more than half an ulp: infinity.
        assert_eq!(round_bf16(f32::from_bits(0x7f7f_0000)), 0x7f7f);
        assert_eq!(round_bf16(f32::MAX), 0x7f80);
        assert_eq!(round_bf16(f32::MIN), 0xff80);
        assert_eq!(round_bf16(f32::from_bits(0x7f7f_7fff)), 0x7f7f);
        assert_eq!(round_bf16(f32::INFINITY), 0x7f80);
        assert_eq!(round_bf16(f32::NEG_INFINITY), 0xff80);
        // Zeros and subnormals: a zero of the same sign (vcvtneps2bf16's DAZ).
        assert_eq!(round_bf16(0.0), 0x0000);
        assert_eq!(round_bf16(-0.0), 0x8000);
        assert_eq!(round_bf16(f32::from_bits(1)), 0x0000);
        assert_eq!(round_bf16(f32::from_bits(0x807f_ffff)), 0x8000);
        // The smallest normal stays, and rounding never produces a bf16 subnormal.
        assert_eq!(round_bf16(f32::MIN_POSITIVE), 0x0080);
        assert_eq!(round_bf16(f32::from_bits(0x0080_ffff)), 0x0081);
        // NaN stays NaN, quieted, sign kept; a payload only in the low half does not become inf.
        for bits in [0x7fc0_0000u32, 0x7f80_0001, 0xff80_0001, 0x7fff_ffff, 0x7f81_0000] {
            let h = round_bf16(f32::from_bits(bits));
            assert!(bf16_to_f32(h).is_nan(), "{bits:#x} -> {h:#x}");
            assert_eq!(h & 0x8000, (bits >> 16) as u16 & 0x8000);
            assert_ne!(h & 0x0040, 0);
        }
    }

    #[test]
    fn rounding_matches_nearest_even_on_random_bits() {
        let mut rng = Rng(7);
        for _ in 0..200_000 {
            let x = f32::from_bits(rng.next() as u32);
            if !x.is_finite() || x.is_subnormal() || x == 0.0 {
                continue;
            }
            let r = bf(x);
            // Nearest: no bf16 neighbour of r is closer to x; ties go to the even mantissa.
            let h = round_bf16(x);
            let (lo, hi) = (bf16_to_f32(h.wrapping_sub(1)), bf16_to_f32(h.wrapping_add(1)));
            let d = (f64::from(r) - f64::from(x)).abs();
            for nb in [lo, hi] {
                if nb.is_finite() && r.is_finite() {
                    let dn = (f64::from(nb) - f64::from(x)).abs();
                    assert!(d < dn || (d == dn && h & 1 == 0), "{x:e} -> {r:e}, neighbour {nb:e}");
                }
            }
        }
    }

    /// One `vdpbf16ps` step through `f32::mul_add` (an exact FMA with gradual underflow).
    fn fma_oracle(acc: f32, a: u16, b: u16) -> f32 {
        bf16_daz(a).mul_add(bf16_daz(b), if acc.is_subnormal() { 0.0f32.copysign(acc) } else { acc })
    }

    #[test]
    fn dp_step_is_an_exact_fma_with_daz_ftz() {
        let mut rng = Rng(11);
        let mut checked = 0;
        for i in 0..400_000 {
            let r = rng.next();
            let (mut a, mut b) = (r as u16, (r >> 16) as u16);
            let mut acc = f32::from_bits((r >> 32) as u32);
            if i % 2 == 0 {
                // Near-cancellation and exponent gaps of 0..63, where rounding is interesting.
                a = (a & 0x807f) | 0x3f00;
                b = (b & 0x807f) | (0x3f00 + ((r >> 48) as u16 & 0x7) * 0x80);
                let p = bf16_to_f32(a) * bf16_to_f32(b);
                let shift = (rng.next() % 64) as i32 - 32;
                acc = -p * 2f32.powi(shift) * (1.0 + rng.unit() * 2f32.powi(-10));
            }
            let (got, want) = (dp_step(acc, a, b), fma_oracle(acc, a, b));
            if want.is_nan() {
                assert!(got.is_nan(), "acc {acc:e} a {a:#x} b {b:#x}: {got:e}");
            } else if want.is_subnormal() || want.abs() == f32::MIN_POSITIVE {
                // Flushed, or the smallest normal when rounding with unbounded exponent gets there.
                assert!(
                    got == 0.0 || got.abs() == f32::MIN_POSITIVE,
                    "acc {acc:e} a {a:#x} b {b:#x}: {got:e}"
                );
                assert_eq!(got.is_sign_negative(), want.is_sign_negative());
            } else {
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "acc {acc:e} a {a:#x} b {b:#x}: {got:e} vs {want:e}"
                );
                checked += 1;
            }
        }
        assert!(checked > 300_000, "{checked}");
    }

    #[test]
    fn dp_step_daz_and_ftz() {
        let one = round_bf16(1.0);
        // A bf16 denormal input reads as zero.
        assert_eq!(dp_step(1.0, 0x0001, one), 1.0);
        assert_eq!(dp_step(0.0, 0x8040, one).to_bits(), 0.0f32.to_bits());
        // A denormal accumulator reads as zero.
        assert_eq!(dp_step(f32::from_bits(5), 0, one), 0.0);
        // 2^-63 · 2^-64 = 2^-127 is tiny: flushed (to -0 for a negative product).
        let (a, b) = (round_bf16(2f32.powi(-63)), round_bf16(-(2f32.powi(-64))));
        assert_eq!(dp_step(0.0, a, b).to_bits(), (-0.0f32).to_bits());
        // A product below f32's range that cancels against nothing is flushed too.
        let tiny = round_bf16(2f32.powi(-100));
        assert_eq!(dp_step(0.0, tiny, tiny), 0.0);
        // Fused: 2^-126 + 2^-149 - 9·2^-152 = 2^-126 - 2^-152 is tiny before rounding but rounds
        // to 2^-126 with an unbounded exponent, so (tininess after rounding) it is not flushed.
        let acc = f32::from_bits(0x0080_0001);
        let (a, b) = (round_bf16(-1.125 * 2f32.powi(-76)), round_bf16(2f32.powi(-73)));
        assert_eq!(dp_step(acc, a, b), f32::MIN_POSITIVE);
        // Overflow goes to infinity; inf · 0 is NaN.
        let big = round_bf16(2f32.powi(127));
        assert_eq!(dp_step(f32::MAX, big, big), f32::INFINITY);
        assert!(dp_step(0.0, round_bf16(f32::INFINITY), 0).is_nan());
    }

    #[test]
    fn emulated_dpbf16_adds_odd_then_even() {
        // acc = 2^24, odd product 1, even product -2^24. Odd first: 2^24 + 1 is a tie that rounds
        // to the even 2^24, then 0. Even first would give 0 + 1 = 1.
        let mut a = [0u16; 32];
        let mut b = [0u16; 32];
        a[1] = round_bf16(1.0);
        b[1] = round_bf16(1.0);
        a[0] = round_bf16(-(2f32.powi(24)));
        b[0] = round_bf16(1.0);
        let mut acc = [0.0f32; 16];
        acc[0] = 2f32.powi(24);
        // SAFETY: Emu needs no CPU feature.
        let out = unsafe { Emu::dpbf16(acc, a, b) };
        assert_eq!(out[0], 0.0);
        assert!(out[1..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn emulated_conversion_and_broadcast_layout() {
        let mut rng = Rng(3);
        for len in [0usize, 1, 2, 31, 32, 33, 64, 95] {
            let src = rng.vec(len);
            let mut dst = vec![u32::MAX; len.div_ceil(2)];
            // SAFETY: Emu needs no CPU feature.
            unsafe { convert_row::<Emu>(&src, &mut dst) };
            for (q, &pair) in dst.iter().enumerate() {
                // SAFETY: Emu needs no CPU feature; the pointer is to a live u32.
                let h = unsafe { Emu::bcast_pair(&pair) };
                let even = round_bf16(src[2 * q]);
                let odd = src.get(2 * q + 1).map_or(0, |&x| round_bf16(x));
                for i in 0..16 {
                    assert_eq!((h[2 * i], h[2 * i + 1]), (even, odd), "len {len} pair {q}");
                }
            }
        }
    }

    /// `c` by the per-element model of the kernel: pairs in order, odd then even, then bias.
    fn model(a: &[f32], lda: usize, m: usize, w: &[f32], k: usize, n: usize, bias: Option<&[f32]>) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f32;
                for p in 0..k.div_ceil(2) {
                    let at = |kk: usize| {
                        if kk < k {
                            (round_bf16(a[i * lda + kk]), round_bf16(w[kk * n + j]))
                        } else {
                            (0, 0)
                        }
                    };
                    let ((a1, b1), (a0, b0)) = (at(2 * p + 1), at(2 * p));
                    acc = dp_step(dp_step(acc, a1, b1), a0, b0);
                }
                c[i * n + j] = acc + bias.map_or(0.0, |b| b[j]);
            }
        }
        c
    }

    /// Per element: the f64 product of the bf16-rounded inputs, the f64 product of the original
    /// inputs, and `Σ|a·b| + |bias|` of the original inputs.
    fn references(
        a: &[f32],
        lda: usize,
        m: usize,
        w: &[f32],
        k: usize,
        n: usize,
        bias: Option<&[f32]>,
    ) -> Vec<[f64; 3]> {
        let mut out = Vec::with_capacity(m * n);
        for i in 0..m {
            for j in 0..n {
                let bj = f64::from(bias.map_or(0.0, |b| b[j]));
                let (mut rounded, mut exact, mut mag) = (bj, bj, bj.abs());
                for kk in 0..k {
                    let (x, y) = (a[i * lda + kk], w[kk * n + j]);
                    rounded += f64::from(bf(x)) * f64::from(bf(y));
                    exact += f64::from(x) * f64::from(y);
                    mag += (f64::from(x) * f64::from(y)).abs();
                }
                out.push([rounded, exact, mag]);
            }
        }
        out
    }

    /// Runs one shape on `path` with the given strides; returns C (dense) after checking that the
    /// padding between C rows was not touched.
    #[allow(clippy::too_many_arguments)]
    fn run(
        path: Bf16Path,
        a: &[f32],
        lda: usize,
        m: usize,
        w: &[f32],
        k: usize,
        n: usize,
        bias: Option<&[f32]>,
        ldc: usize,
    ) -> Vec<f32> {
        const SENTINEL: f32 = -7.25e30;
        let packed = PackedBf16::pack_for(w, k, n, path);
        assert_eq!((packed.k(), packed.n(), packed.path()), (k, n, path));
        let mut c = vec![SENTINEL; m * ldc];
        bf16_gemm(a, lda, m, &packed, bias, &mut c, ldc);
        let mut dense = Vec::with_capacity(m * n);
        for row in c.chunks(ldc) {
            dense.extend_from_slice(&row[..n]);
            assert!(row[n..].iter().all(|&v| v == SENTINEL), "row padding written");
        }
        dense
    }

    /// Emulated GEMM: bit-exact against the per-element model, and within the rounding bounds
    /// against the f64 references.
    ///
    /// Bounds, relative to s = Σ|a·b| + |bias| over the original inputs, with u = 2^-24:
    /// * vs the f64 product of the bf16-rounded inputs: each of the ≤ k + 1 roundings of the
    ///   running f32 sum (one fused step per k value, the zero pad being exact, and the bias add)
    ///   errs by at most u·(the partial sum of magnitudes), so the error is ≤ (k + 2)·u·s' (the
    ///   extra 1 and the 0.1% slack cover second-order terms), s' being the magnitude sum of the
    ///   rounded inputs: s' ≤ (1 + 2^-8)²·s.
    /// * vs the f64 product of the original inputs: bf16 keeps 8 significant bits (7 stored), so
    ///   round-to-nearest errs by ≤ 2^-8 relative on each input (half an ulp of 2^-7) and a product
    ///   by ≤ 2·2^-8 + 2^-16; add the bound above. (Random data sits well inside: errors of the
    ///   terms have random signs, so typical errors are ~2^-8·s/√k.)
    fn check_shape(rng: &mut Rng, m: usize, k: usize, n: usize, strided: bool, with_bias: bool) {
        let (lda, ldc) = if strided { (k + 5, n + 3) } else { (k, n) };
        let a = rng.vec(m * lda);
        let w = rng.vec(k * n);
        let bias = with_bias.then(|| rng.vec(n));
        let c = run(Bf16Path::Emulated, &a, lda, m, &w, k, n, bias.as_deref(), ldc);
        let want = model(&a, lda, m, &w, k, n, bias.as_deref());
        for (idx, (&got, &want)) in c.iter().zip(&want).enumerate() {
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "m {m} k {k} n {n} at {idx}: {got:e} vs model {want:e}"
            );
        }
        let u = 2f64.powi(-24);
        let acc_bound = (k as f64 + 2.0) * u * (1.0 + 2f64.powi(-8)).powi(2);
        let input_bound = 2.0 * 2f64.powi(-8) + 2f64.powi(-16);
        for (idx, (&got, [rounded, exact, mag])) in c
            .iter()
            .zip(references(&a, lda, m, &w, k, n, bias.as_deref()))
            .enumerate()
        {
            let got = f64::from(got);
            assert!(
                (got - rounded).abs() <= acc_bound * mag * 1.001 + 1e-30,
                "m {m} k {k} n {n} at {idx}: {got:e} vs bf16 reference {rounded:e} (Σ|ab| {mag:e})"
            );
            assert!(
                (got - exact).abs() <= (input_bound + acc_bound) * mag * 1.001 + 1e-30,
                "m {m} k {k} n {n} at {idx}: {got:e} vs f32 reference {exact:e} (Σ|ab| {mag:e})"
            );
        }
    }

    #[test]
    fn emulated_gemm_awkward_shapes() {
        let mut rng = Rng(42);
        let mut case = 0;
        for m in [1usize, 3, 13, 33] {
            for k in [1usize, 2, 3, 63, 384, 1537] {
                for n in [1usize, 15, 17, 33, 384] {
                    check_shape(&mut rng, m, k, n, case % 2 == 1, case % 3 != 0);
                    case += 1;
                }
            }
        }
    }

    #[test]
    fn emulated_gemm_many_rows() {
        let mut rng = Rng(43);
        for (i, (k, n)) in [(1usize, 384usize), (2, 1), (3, 15), (63, 33), (384, 384), (1537, 17)]
            .into_iter()
            .enumerate()
        {
            check_shape(&mut rng, 512, k, n, i % 2 == 0, i % 3 != 1);
        }
    }

    /// Row blocks and column groups depend on the pool size; the bits must not.
    #[test]
    fn task_split_does_not_change_bits() {
        let mut rng = Rng(8);
        for (m, k, n) in [(40usize, 800usize, 384usize), (300, 100, 70)] {
            let a = rng.vec(m * k);
            let w = rng.vec(k * n);
            let bias = rng.vec(n);
            let packed = PackedBf16::pack_for(&w, k, n, Bf16Path::Emulated);
            let mut outs = Vec::new();
            for threads in [1usize, 3, 7] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut c = vec![0.0f32; m * n];
                pool.install(|| bf16_gemm(&a, k, m, &packed, Some(&bias), &mut c, n));
                outs.push(c);
            }
            assert!(
                outs.windows(2)
                    .all(|w| w[0].iter().zip(&w[1]).all(|(x, y)| x.to_bits() == y.to_bits()))
            );
        }
    }

    #[test]
    fn gemm_on_m_zero_and_nan_rows() {
        let mut rng = Rng(5);
        let (k, n) = (40, 70);
        let w = rng.vec(k * n);
        let packed = PackedBf16::pack(&w, k, n);
        let mut c: Vec<f32> = Vec::new();
        bf16_gemm(&[], k, 0, &packed, None, &mut c, n);
        let mut a = rng.vec(3 * k);
        a[k + 7] = f32::NAN;
        let mut c = vec![0.0; 3 * n];
        bf16_gemm(&a, k, 3, &packed, None, &mut c, n);
        assert!(c[..n].iter().chain(&c[2 * n..]).all(|v| v.is_finite()));
        assert!(c[n..2 * n].iter().all(|v| v.is_nan()));
    }

    #[test]
    #[should_panic(expected = "C has")]
    fn gemm_rejects_short_output() {
        let packed = PackedBf16::pack(&[1.0; 6], 2, 3);
        let mut c = vec![0.0; 5];
        bf16_gemm(&[1.0; 4], 2, 2, &packed, None, &mut c, 3);
    }

    #[test]
    #[should_panic(expected = "expected k · n")]
    fn pack_rejects_wrong_length() {
        PackedBf16::pack(&[1.0; 5], 2, 3);
    }

    #[test]
    fn paths_and_reason_agree() {
        let paths = Bf16Path::available();
        assert_eq!(paths[0], Bf16Path::Emulated);
        assert_eq!(Bf16Path::native().is_some(), unsupported_reason().is_none());
        assert_eq!(paths.len(), 1 + usize::from(Bf16Path::native().is_some()));
        assert_eq!(Bf16Path::Emulated.name(), "emulated");
        assert_eq!(Bf16Path::Avx512Bf16.name(), "avx512bf16");
        if let Some(reason) = unsupported_reason() {
            eprintln!("bf16: {reason}");
        }
    }

    /// Every available path against the emulation, within twice the f32 accumulation bound
    /// (both are within (2·kp + 1)·u·s of the exact product of the rounded inputs; they agree bit
    /// for bit if the hardware follows Intel's pseudo-code, which is printed, not required).
    #[test]
    fn every_path_matches_emulation() {
        if Bf16Path::native().is_none() {
            eprintln!(
                "skipped: {} (only the emulation runs here)",
                unsupported_reason().unwrap_or_default()
            );
        }
        let mut rng = Rng(99);
        for path in Bf16Path::available() {
            let (mut exact, mut total) = (0usize, 0usize);
            for (m, k, n) in [
                (1usize, 384usize, 1152usize),
                (13, 1537, 33),
                (33, 63, 384),
                (100, 1536, 384),
                (512, 384, 17),
            ] {
                let (lda, ldc) = (k + 1, n + 2);
                let a = rng.vec(m * lda);
                let w = rng.vec(k * n);
                let bias = rng.vec(n);
                let got = run(path, &a, lda, m, &w, k, n, Some(&bias), ldc);
                let want = run(Bf16Path::Emulated, &a, lda, m, &w, k, n, Some(&bias), ldc);
                let bound = 2.0 * (2.0 * k.div_ceil(2) as f64 + 1.0) * 2f64.powi(-24) * 1.01;
                for (idx, ((&g, &e), [_, _, mag])) in got
                    .iter()
                    .zip(&want)
                    .zip(references(&a, lda, m, &w, k, n, Some(&bias)))
                    .enumerate()
                {
                    let diff = (f64::from(g) - f64::from(e)).abs();
                    assert!(
                        diff <= bound * mag + 1e-30,
                        "{} m {m} k {k} n {n} at {idx}: {g:e} vs {e:e}",
                        path.name()
                    );
                    exact += usize::from(g.to_bits() == e.to_bits());
                    total += 1;
                }
            }
            eprintln!("bf16 {}: {exact}/{total} bit-identical to the emulation", path.name());
        }
    }

    #[test]
    fn native_conversion_matches_round_bf16() {
        #[cfg(target_arch = "x86_64")]
        if Bf16Path::native().is_some() {
            let mut rng = Rng(17);
            let mut src: Vec<f32> = (0..1000).map(|_| f32::from_bits(rng.next() as u32)).collect();
            let specials = [
                0.0f32,
                -0.0,
                f32::MAX,
                f32::MIN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::NAN,
                f32::from_bits(0x7f80_0001),
                f32::from_bits(1),
                f32::from_bits(0x807f_ffff),
                f32::MIN_POSITIVE,
                1.0 + 2f32.powi(-8),
                1.0 + 3.0 * 2f32.powi(-8),
                f32::from_bits(0x7f7f_7fff),
                f32::from_bits(0x7f7f_8000),
            ];
            src.extend(specials.iter().cycle().take(64));
            let mut dst = vec![0u32; src.len().div_ceil(2)];
            // SAFETY: the CPU has avx512f + avx512bf16 (checked above).
            unsafe { avx512::convert_row(&src, &mut dst) };
            let got: Vec<u16> = dst.iter().flat_map(|&p| [p as u16, (p >> 16) as u16]).collect();
            for (i, &x) in src.iter().enumerate() {
                let want = round_bf16(x);
                let ok = got[i] == want || (bf16_to_f32(got[i]).is_nan() && bf16_to_f32(want).is_nan());
                assert!(
                    ok,
                    "{x:e} ({:#x}): native {:#x}, round_bf16 {want:#x}",
                    x.to_bits(),
                    got[i]
                );
            }
            return;
        }
        eprintln!("skipped: {}", unsupported_reason().unwrap_or_default());
    }

    #[test]
    fn native_dpbf16_matches_dp_step() {
        #[cfg(target_arch = "x86_64")]
        if Bf16Path::native().is_some() {
            use avx512::Avx512;
            let mut rng = Rng(23);
            let (mut exact, mut total) = (0usize, 0usize);
            for _ in 0..2000 {
                let acc: [f32; 16] = std::array::from_fn(|_| rng.unit() * 4.0);
                let a: [u16; 32] = std::array::from_fn(|_| round_bf16(rng.unit() * 8.0));
                let b: [u16; 32] = std::array::from_fn(|_| round_bf16(rng.unit() * 8.0));
                // SAFETY: Emu needs no feature.
                let want = unsafe { Emu::dpbf16(acc, a, b) };
                let mut got = [0.0f32; 16];
                // SAFETY: the CPU has avx512f + avx512bf16; every pointer is to a 64-byte array.
                unsafe {
                    let v = Avx512::dpbf16(
                        Avx512::load_f32(acc.as_ptr()),
                        Avx512::load_h(a.as_ptr()),
                        Avx512::load_h(b.as_ptr()),
                    );
                    Avx512::store_f32(got.as_mut_ptr(), v);
                }
                for i in 0..16 {
                    let mag = acc[i].abs()
                        + (bf16_to_f32(a[2 * i]) * bf16_to_f32(b[2 * i])).abs()
                        + (bf16_to_f32(a[2 * i + 1]) * bf16_to_f32(b[2 * i + 1])).abs();
                    let diff = (f64::from(got[i]) - f64::from(want[i])).abs();
                    assert!(
                        diff <= 4.0 * 2f64.powi(-24) * f64::from(mag),
                        "lane {i}: {} vs {}",
                        got[i],
                        want[i]
                    );
                    exact += usize::from(got[i].to_bits() == want[i].to_bits());
                    total += 1;
                }
            }
            eprintln!("vdpbf16ps: {exact}/{total} lanes bit-identical to the emulation");
            return;
        }
        eprintln!("skipped: {}", unsupported_reason().unwrap_or_default());
    }
}
