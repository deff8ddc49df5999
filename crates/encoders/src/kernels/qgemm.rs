//! Dynamically quantized int8 GEMM for the `Linear` layers of BERT-like encoders.
//!
//! # Quantization scheme
//!
//! The scheme is ONNX Runtime's `quantize_dynamic(per_channel=True, weight_type=QInt8)`, with the
//! activations quantized per row instead of per tensor:
//!
//! - **Weights** `W[k, n]` are quantized once, at load: symmetric, one scale per output channel
//!   (column) `s_w[n] = max|W[:, n]| / 127`, `qw = round(w / s_w[n])` in `[-127, 127]`. An all-zero
//!   column gets scale 1.
//! - **Activations** `A[m, k]` are quantized at run time, one asymmetric scale per row:
//!   `lo = min(row, 0)`, `hi = max(row, 0)`, `s_a = (hi - lo) / 127`, `zp = round(-lo / s_a)` and
//!   `qa = clamp(round(x / s_a) + zp, 0, 127)` as `u8`. Including 0 in the range makes `zp` an
//!   integer in `[0, 127]` and represents 0 exactly.
//! - **Product**: `acc[m, n] = Σ_k qa[m, k] · qw[k, n]` in exact `i32`, then
//!   `C[m, n] = (s_a[m] · s_w[n]) · (acc[m, n] − zp[m] · Σ_k qw[k, n]) (+ bias[n])`; the column sums
//!   of `qw` are computed at load.
//!
//! Rounding is to nearest, ties to even, everywhere.
//!
//! ## Why 7-bit activations
//!
//! AVX2 has no u8×i8 dot product into `i32`: `vpmaddubsw` multiplies u8 by i8 and adds adjacent
//! pairs into a *saturating* `i16`. With 8-bit activations `2 · 255 · 127 = 64770` overflows `i16`;
//! with 7-bit ones `2 · 127 · 127 = 32258 < 32767` never does. So the AVX2 path computes exactly the
//! same integers as VNNI's `vpdpbusd` and the scalar path, and since the `f32` epilogue is one shared
//! function (Rust never contracts to FMA), every path gives bit-identical outputs. The cost is one
//! bit of activation precision: about 1–1.7% relative (Frobenius) error end to end on random data,
//! against roughly 0.7–1% with 8-bit activations.
//!
//! # Layout
//!
//! `k` is padded to `kp`, a multiple of 64, with zeros. Quantized activations are rows of `kp`
//! bytes. Weights are packed in panels of `NR` columns; inside a panel, for each group of 4
//! consecutive `k` (the `vpdpbusd` layout), the `NR` columns' 4 bytes follow each other: byte
//! `((panel · kp/4 + g) · NR + j) · 4 + t` holds `qw[4g + t, panel · NR + j]`. Columns past `n` are
//! zero. AMX splits each 32-column panel into two such runs of 16 columns, one after the other, so
//! that 16 consecutive groups of a run are one 16 × 64-byte weight tile. A micro-kernel computes an `MR × NR` tile over the whole of `k`: per group of 4 `k` it
//! broadcasts 4 activation bytes of each of its `MR` rows and multiplies them by the `NR / LANES`
//! weight vectors of the panel.
//!
//! # Dispatch
//!
//! One generic micro-kernel is written over [`I8Simd`], a handful of SIMD operations implemented
//! for plain arrays (the scalar path), AVX2 (`vpmaddubsw` + `vpmaddwd` + `vpaddd`), AVX-VNNI and
//! AVX-512 VNNI (one `vpdpbusd` each). AMX has its own tile kernel ([`amx`]): per 64 `k` it loads
//! two activation and two weight tiles and issues four `tdpbusd` into a 32 × 32 block of
//! accumulators. [`I8Path::chosen`] picks the fastest one the CPU runs, or the
//! one `SIEVE_KERNEL` names. The path is fixed when the weights are packed ([`PackedI8`]) since the
//! panel width depends on it. Work is split over the rayon global pool in blocks of rows, and of
//! column panels too when there are too few rows to keep every thread busy.

use std::cell::Cell;
use std::ops::Range;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::RowSimd;

/// An int8 kernel path, in increasing speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum I8Path {
    /// Portable Rust, exact integer arithmetic.
    Scalar,
    /// AVX2: `vpmaddubsw` + `vpmaddwd` + `vpaddd`.
    Avx2,
    /// AVX-VNNI (256-bit `vpdpbusd`).
    AvxVnni,
    /// AVX-512 VNNI (512-bit `vpdpbusd`).
    Avx512Vnni,
    /// AMX (`tdpbusd` on 16 × 64-byte tiles, Linux), with an AVX-512 epilogue.
    Amx,
}

impl I8Path {
    const ALL: [I8Path; 5] = [
        I8Path::Scalar,
        I8Path::Avx2,
        I8Path::AvxVnni,
        I8Path::Avx512Vnni,
        I8Path::Amx,
    ];

    /// Every path this CPU can run, slowest first (Scalar always).
    pub(crate) fn available() -> Vec<I8Path> {
        Self::ALL.into_iter().filter(|p| p.supported()).collect()
    }

    /// `super::requested_path()` if it names an available path of this family ("scalar", "avx2",
    /// "avxvnni", "avx512vnni", "amx"), else the fastest available. Cached.
    pub(crate) fn chosen() -> I8Path {
        static CHOSEN: OnceLock<I8Path> = OnceLock::new();
        *CHOSEN.get_or_init(|| select_path(super::requested_path().as_deref(), &Self::available()))
    }

    /// The path's name, as `SIEVE_KERNEL` spells it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            I8Path::Scalar => "scalar",
            I8Path::Avx2 => "avx2",
            I8Path::AvxVnni => "avxvnni",
            I8Path::Avx512Vnni => "avx512vnni",
            I8Path::Amx => "amx",
        }
    }

    fn from_name(name: &str) -> Option<I8Path> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether this CPU runs the path.
    fn supported(self) -> bool {
        match self {
            I8Path::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            I8Path::Avx2 => is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            I8Path::AvxVnni => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("avxvnni"),
            #[cfg(target_arch = "x86_64")]
            I8Path::Avx512Vnni => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            I8Path::Amx => amx::usable(),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Micro-tile `(MR, NR)`: rows and columns one micro-kernel call computes.
    fn tile(self) -> (usize, usize) {
        match self {
            I8Path::Scalar => (SCALAR_MR, SCALAR_NV * SCALAR_LANES),
            I8Path::Avx2 => (AVX2_MR, AVX2_NV * 8),
            I8Path::AvxVnni => (AVXVNNI_MR, AVXVNNI_NV * 8),
            I8Path::Avx512Vnni => (AVX512_MR, AVX512_NV * 16),
            I8Path::Amx => (AMX_MR, AMX_NR),
        }
    }

    /// Columns of one run of the packing (a panel is `nr / sub_panel` of them side by side): the
    /// whole panel, except for AMX whose weight tiles are 16 columns wide.
    fn sub_panel(self) -> usize {
        match self {
            I8Path::Amx => 16,
            _ => self.tile().1,
        }
    }
}

/// The path `requested` names when it is in `available`, else the last (fastest) of `available`.
fn select_path(requested: Option<&str>, available: &[I8Path]) -> I8Path {
    requested
        .and_then(I8Path::from_name)
        .filter(|p| available.contains(p))
        .or_else(|| available.last().copied())
        .unwrap_or(I8Path::Scalar)
}

// Micro-tiles: MR rows × NV vectors of i32 accumulators, which must fit the register file with the
// NV weight vectors and one broadcast. AVX2 4×2 (8 accumulators + 2 weights + broadcast + the
// `vpmaddubsw` / `vpmaddwd` temporaries and the ones vector: 13 of 16 ymm; 6×2 spills one
// accumulator and measured no faster, the two multiplies per step being the bottleneck). AVX-VNNI
// 6×2 (12 + 2 + 1 = 15 ymm). AVX-512 VNNI 8×3 (24 + 3 + 1 = 28 of 32 zmm).
const SCALAR_LANES: usize = 8;
const SCALAR_MR: usize = 4;
const SCALAR_NV: usize = 2;
const AVX2_MR: usize = 4;
const AVX2_NV: usize = 2;
const AVXVNNI_MR: usize = 6;
const AVXVNNI_NV: usize = 2;
const AVX512_MR: usize = 8;
const AVX512_NV: usize = 3;
/// AMX: 2 × 2 tiles of 16 × 16 accumulators (tmm0–3), two activation tiles (tmm4–5) and two
/// weight tiles (tmm6–7), so each tile loaded feeds two `tdpbusd`.
const AMX_MR: usize = 32;
const AMX_NR: usize = 32;
/// Upper bound of `MR · NR` over the paths (the stack tile's size).
const TILE_MAX: usize = 32 * 32;
/// `k` is padded with zeros to a multiple of this: one AMX tile row (64 bytes), which is also a
/// whole number of 4-byte `vpdpbusd` groups for the other paths.
const KP_ALIGN: usize = 64;
/// Activation rows are allocated in multiples of this, so the AMX path may load whole tiles past
/// the last row (their results are dropped).
const ROW_ALIGN: usize = AMX_MR;

/// Largest `k`: `|acc − zp · colsum| ≤ 2 · 127² · kp` must fit `i32`.
const MAX_K: usize = 65_536;
/// Rows of A one task covers (rounded down to a multiple of MR): ~100 KiB of A at k = 1536 stays in
/// L2 while the task sweeps the weight panels.
const ROW_BLOCK: usize = 96;
/// Below this many multiply-adds a product runs on the calling thread.
const PAR_MIN_WORK: usize = 1 << 21;
/// Below this many activations they are quantized on the calling thread.
const PAR_MIN_QUANT: usize = 1 << 15;

/// `round(y)` to nearest, ties to even, for `|y| ≤ 2^22`. Adding `1.5 · 2^23` pushes the fraction
/// bits out of the mantissa, which then holds the integer: pure vector arithmetic, unlike
/// `round_ties_even` (SSE4.1) followed by a saturating `as` conversion.
#[inline(always)]
fn round_i32(y: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0;
    (y + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32
}

/// `x` clamped to `[-bound, bound]`, NaN to `-bound`.
#[inline(always)]
fn clamp_nan(x: f32, bound: f32) -> f32 {
    x.max(-bound).min(bound)
}

/// The `f32` epilogue shared by every path: `(s_a · s_w) · (acc − zp · colsum)`.
#[inline(always)]
fn dequant(acc: i32, zp: i32, colsum: i32, scale_a: f32, scale_w: f32) -> f32 {
    (scale_a * scale_w) * (acc - zp * colsum) as f32
}

/// Scale of a row (activations) or column (weights) spanning `range` in 127 steps: 1 for an
/// all-zero range, finite for any finite data.
#[inline(always)]
fn step(range: f32) -> f32 {
    let s = range / 127.0;
    if s.is_nan() || s <= 0.0 {
        1.0
    } else if s.is_finite() {
        // Normal, so that its reciprocal (activations are multiplied by it) is finite.
        s.max(f32::MIN_POSITIVE)
    } else {
        f32::MAX / 127.0
    }
}

// ---------------------------------------------------------------------------------------------
// Weights.

/// A buffer whose bytes start on a 64-byte boundary (so weight vectors never split cache lines).
struct AlignedBytes {
    buf: Vec<u8>,
    off: usize,
    len: usize,
}

impl AlignedBytes {
    fn zeroed(len: usize) -> Self {
        let buf = vec![0u8; len + 63];
        let off = buf.as_ptr().align_offset(64).min(63);
        AlignedBytes { buf, off, len }
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[self.off..self.off + self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// Per-column symmetric quantization of `w [k, n]`: (`q [k, n]`, scales, column sums of `q`).
fn quantize_weights(w: &[f32], k: usize, n: usize) -> (Vec<i8>, Vec<f32>, Vec<i32>) {
    let mut maxabs = vec![0f32; n];
    for row in w.chunks_exact(n) {
        for (m, &x) in maxabs.iter_mut().zip(row) {
            let a = x.abs();
            *m = if a > *m { a } else { *m };
        }
    }
    let scales: Vec<f32> = maxabs.iter().map(|&m| step(m)).collect();
    let mut q = vec![0i8; k * n];
    let mut colsums = vec![0i32; n];
    for (qrow, row) in q.chunks_exact_mut(n).zip(w.chunks_exact(n)) {
        for (((qv, &x), &s), cs) in qrow.iter_mut().zip(row).zip(&scales).zip(colsums.iter_mut()) {
            *qv = round_i32(clamp_nan(x / s, 127.0)) as i8;
            *cs += i32::from(*qv);
        }
    }
    (q, scales, colsums)
}

/// Linear weights `[k, n]` (row-major, burn's `Linear` layout `[d_in, d_out]`) quantized and
/// packed for one [`I8Path`].
pub(crate) struct PackedI8 {
    k: usize,
    kp: usize,
    n: usize,
    nr: usize,
    path: I8Path,
    /// Panels of `nr` columns, `kp / 4` groups of `nr × 4` bytes each (i8 stored as u8).
    data: AlignedBytes,
    scales: Vec<f32>,
    colsums: Vec<i32>,
}

impl PackedI8 {
    /// Quantizes and packs `w [k, n]` for [`I8Path::chosen`].
    pub(crate) fn quantize(w: &[f32], k: usize, n: usize) -> Self {
        Self::quantize_for(w, k, n, I8Path::chosen())
    }

    /// Quantizes and packs `w [k, n]` for `path`, which this CPU must run.
    pub(crate) fn quantize_for(w: &[f32], k: usize, n: usize, path: I8Path) -> Self {
        assert!(k > 0 && n > 0, "PackedI8: empty weight matrix [{k}, {n}]");
        assert!(
            k <= MAX_K,
            "PackedI8: k = {k} exceeds {MAX_K}, the exact i32 accumulation limit"
        );
        assert_eq!(
            w.len(),
            k * n,
            "PackedI8: weights hold {} values, not k·n = {k}·{n}",
            w.len()
        );
        assert!(
            path.supported(),
            "PackedI8: this CPU cannot run the {} int8 path",
            path.name()
        );
        let (_, nr) = path.tile();
        let sub = path.sub_panel();
        let kp = k.next_multiple_of(KP_ALIGN);
        let groups = kp / 4;
        let panels = n.div_ceil(nr);
        let (q, scales, colsums) = quantize_weights(w, k, n);
        let mut data = AlignedBytes::zeroed(panels * groups * nr * 4);
        let bytes = data.as_mut_slice();
        for (kk, qrow) in q.chunks_exact(n).enumerate() {
            let (g, t) = (kk / 4, kk % 4);
            for (j, &v) in qrow.iter().enumerate() {
                // Sub-panel `j / sub` of the whole columns, then group g, then column j % sub.
                let (s, jj) = (j / sub, j % sub);
                bytes[((s * groups + g) * sub + jj) * 4 + t] = v as u8;
            }
        }
        PackedI8 {
            k,
            kp,
            n,
            nr,
            path,
            data,
            scales,
            colsums,
        }
    }

    /// Input features (rows of the weight matrix).
    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// Output features (columns of the weight matrix).
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// The path the weights are packed for.
    pub(crate) fn path(&self) -> I8Path {
        self.path
    }

    /// Bytes held (for memory reporting).
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.data.buf.capacity()
            + 4 * self.scales.capacity()
            + 4 * self.colsums.capacity()
    }

    /// Weight bytes of panel `p`.
    fn panel(&self, p: usize) -> &[u8] {
        let len = self.kp / 4 * self.nr * 4;
        &self.data.as_slice()[p * len..(p + 1) * len]
    }
}

// ---------------------------------------------------------------------------------------------
// Activations.

/// Quantization parameters of one activation row.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct RowQuant {
    scale: f32,
    zp: i32,
}

/// Quantizes one row `x` into `out` (`kp ≥ x.len()` bytes, the tail zeroed).
#[inline(always)]
fn quantize_row_impl(x: &[f32], out: &mut [u8]) -> RowQuant {
    // Eight running minima / maxima so the loop vectorizes; both start at 0 (the range holds 0).
    let (mut lo, mut hi) = ([0f32; 8], [0f32; 8]);
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for j in 0..8 {
            lo[j] = if c[j] < lo[j] { c[j] } else { lo[j] };
            hi[j] = if c[j] > hi[j] { c[j] } else { hi[j] };
        }
    }
    for (j, &v) in rest.iter().enumerate() {
        lo[j] = if v < lo[j] { v } else { lo[j] };
        hi[j] = if v > hi[j] { v } else { hi[j] };
    }
    let lo = lo.into_iter().fold(0f32, |a, b| if b < a { b } else { a });
    let hi = hi.into_iter().fold(0f32, |a, b| if b > a { b } else { a });
    let scale = step(hi - lo);
    let zp = round_i32(clamp_nan(-lo / scale, 127.0)).max(0);
    // A multiply by the (finite, since `scale` is normal) reciprocal: a division per value cost
    // more than the rest of the quantization.
    let inv = 1.0 / scale;
    let (body, tail) = out.split_at_mut(x.len());
    for (o, &v) in body.iter_mut().zip(x) {
        *o = (round_i32(clamp_nan(v * inv, 256.0)) + zp).clamp(0, 127) as u8;
    }
    tail.fill(0);
    RowQuant { scale, zp }
}

/// [`quantize_row_impl`] compiled for AVX2 (the same IEEE operations, so the same bytes).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_row_avx2(x: &[f32], out: &mut [u8]) -> RowQuant {
    quantize_row_impl(x, out)
}

/// [`quantize_row_impl`] in AVX-512 intrinsics: the same IEEE operations in the same order, so
/// the same bytes (`vminps` / `vmaxps` keep their second operand on NaN, as the comparisons
/// there do), where the compiler's own vectorisation of the running minima was slower than the
/// rest of the quantization.
///
/// # Safety
/// The CPU must support AVX-512 F and BW.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_row_avx512(x: &[f32], out: &mut [u8]) -> RowQuant {
    use std::arch::x86_64::*;
    const MAGIC: f32 = 12_582_912.0;
    let n = x.len();
    assert!(out.len() >= n, "quantize_row: output shorter than the row");
    let tail_mask = |i: usize| -> u16 { if n - i >= 16 { u16::MAX } else { (1u16 << (n - i)) - 1 } };
    // SAFETY: every load and store covers lanes `i .. i + 16` masked to `< n`, inside `x` and
    // `out` (asserted above).
    unsafe {
        let (mut lo, mut hi) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        for i in (0..n).step_by(16) {
            // Masked-off lanes read as 0, which the range holds anyway.
            let v = _mm512_maskz_loadu_ps(tail_mask(i), x.as_ptr().add(i));
            lo = _mm512_min_ps(v, lo);
            hi = _mm512_max_ps(v, hi);
        }
        let (lo, hi) = (_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi));
        let scale = step(hi - lo);
        let zp = round_i32(clamp_nan(-lo / scale, 127.0)).max(0);
        let inv = _mm512_set1_ps(1.0 / scale);
        let (low, high) = (_mm512_set1_ps(-256.0), _mm512_set1_ps(256.0));
        let magic = _mm512_set1_ps(MAGIC);
        let magic_bits = _mm512_set1_epi32(MAGIC.to_bits() as i32);
        let zpv = _mm512_set1_epi32(zp);
        let (zero, top) = (_mm512_setzero_si512(), _mm512_set1_epi32(127));
        for i in (0..n).step_by(16) {
            let mask = tail_mask(i);
            let v = _mm512_maskz_loadu_ps(mask, x.as_ptr().add(i));
            let y = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, inv), low), high);
            let r = _mm512_sub_epi32(_mm512_castps_si512(_mm512_add_ps(y, magic)), magic_bits);
            let q = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(r, zpv), zero), top);
            _mm512_mask_cvtepi32_storeu_epi8(out.as_mut_ptr().add(i).cast(), mask, q);
        }
        out[n..].fill(0);
        RowQuant { scale, zp }
    }
}

fn quantize_row(x: &[f32], out: &mut [u8], simd: RowSimd) -> RowQuant {
    match simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `RowSimd::detect` only returns Avx512 when the CPU supports AVX-512 F and BW.
        RowSimd::Avx512 => unsafe { quantize_row_avx512(x, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `RowSimd::detect` only returns Avx2 when the CPU supports AVX2.
        RowSimd::Avx2 => unsafe { quantize_row_avx2(x, out) },
        _ => quantize_row_impl(x, out),
    }
}

/// Per-row quantized activations, reusable across calls (no allocation once grown).
#[derive(Default)]
pub(crate) struct QuantizedRows {
    m: usize,
    k: usize,
    kp: usize,
    /// `m` rows of `kp` bytes.
    data: Vec<u8>,
    params: Vec<RowQuant>,
}

impl QuantizedRows {
    /// An empty buffer.
    pub(crate) const fn new() -> Self {
        QuantizedRows {
            m: 0,
            k: 0,
            kp: 0,
            data: Vec::new(),
            params: Vec::new(),
        }
    }

    /// Quantizes `a [m, k]` (row stride `lda`) in place of the previous contents, in parallel over
    /// rows when large.
    pub(crate) fn quantize(&mut self, a: &[f32], lda: usize, m: usize, k: usize) {
        assert!(k > 0, "QuantizedRows: k must be positive");
        assert!(lda >= k, "QuantizedRows: row stride lda = {lda} is below k = {k}");
        if m > 0 {
            let need = (m - 1) * lda + k;
            assert!(
                a.len() >= need,
                "QuantizedRows: A holds {} values, [{m}, {k}] with lda {lda} needs {need}",
                a.len()
            );
        }
        let kp = k.next_multiple_of(KP_ALIGN);
        let alloc = m.next_multiple_of(ROW_ALIGN) * kp;
        if self.data.len() < alloc {
            self.data.resize(alloc, 0);
        }
        if self.params.len() < m {
            self.params.resize(m, RowQuant::default());
        }
        (self.m, self.k, self.kp) = (m, k, kp);
        let simd = RowSimd::detect();
        let (data, params) = (&mut self.data[..m * kp], &mut self.params[..m]);
        let one = |(i, (out, p)): (usize, (&mut [u8], &mut RowQuant))| {
            *p = quantize_row(&a[i * lda..i * lda + k], out, simd);
        };
        if m * k < PAR_MIN_QUANT {
            data.chunks_exact_mut(kp).zip(params).enumerate().for_each(one);
        } else {
            let rows = data.par_chunks_exact_mut(kp).zip(params);
            rows.enumerate().with_min_len((4096 / k).max(1)).for_each(one);
        }
    }

    /// Rows held.
    pub(crate) fn rows(&self) -> usize {
        self.m
    }
}

// ---------------------------------------------------------------------------------------------
// Micro-kernel.

/// The SIMD operations the micro-kernel is written in. A vector `V` holds `LANES` i32 lanes; a
/// lane of a weight vector holds 4 i8 of one column (4 consecutive k), a lane of a broadcast
/// activation holds 4 u8 of one row.
///
/// # Safety
/// Implementations must compute `dot` exactly (`acc + Σ_t a_byte[t] · b_byte[t]` per lane, u8 ×
/// i8, for activations in `[0, 127]`). Callers must only use an implementation on a CPU that
/// supports its instructions; `load` reads `4 · LANES` bytes and `store` writes `LANES` i32.
unsafe trait I8Simd {
    type V: Copy;
    const LANES: usize;
    unsafe fn zero() -> Self::V;
    unsafe fn load(p: *const u8) -> Self::V;
    unsafe fn splat(a4: i32) -> Self::V;
    unsafe fn dot(acc: Self::V, a: Self::V, b: Self::V) -> Self::V;
    unsafe fn store(p: *mut i32, v: Self::V);
}

/// Portable reference implementation: plain integer arithmetic.
struct ScalarOps;

// SAFETY: `dot` is the exact definition; `load`/`store` access exactly 32 bytes.
unsafe impl I8Simd for ScalarOps {
    type V = [i32; SCALAR_LANES];
    const LANES: usize = SCALAR_LANES;

    #[inline(always)]
    unsafe fn zero() -> Self::V {
        [0; SCALAR_LANES]
    }

    #[inline(always)]
    unsafe fn load(p: *const u8) -> Self::V {
        // SAFETY: the caller guarantees 4 · LANES readable bytes at `p`.
        let bytes = unsafe { p.cast::<[[u8; 4]; SCALAR_LANES]>().read_unaligned() };
        bytes.map(i32::from_le_bytes)
    }

    #[inline(always)]
    unsafe fn splat(a4: i32) -> Self::V {
        [a4; SCALAR_LANES]
    }

    #[inline(always)]
    unsafe fn dot(acc: Self::V, a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|j| {
            let (a4, b4) = (a[j].to_le_bytes(), b[j].to_le_bytes());
            let sum: i32 = (0..4).map(|t| i32::from(a4[t]) * i32::from(b4[t] as i8)).sum();
            acc[j] + sum
        })
    }

    #[inline(always)]
    unsafe fn store(p: *mut i32, v: Self::V) {
        // SAFETY: the caller guarantees LANES writable i32 at `p`.
        unsafe { p.cast::<[i32; SCALAR_LANES]>().write_unaligned(v) }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::I8Simd;

    /// AVX2: `vpmaddubsw` (u8 × i8 pairs → i16; exact since activations are 7-bit), `vpmaddwd`
    /// with ones (i16 pairs → i32), `vpaddd`.
    pub(super) struct Avx2Ops;

    // SAFETY: maddubs cannot saturate for a ≤ 127 (2 · 127 · 127 < 2^15), so each i32 lane gets the
    // exact sum of its 4 products; load/store move 32 bytes. Used only after detecting AVX2.
    unsafe impl I8Simd for Avx2Ops {
        type V = __m256i;
        const LANES: usize = 8;

        #[inline(always)]
        unsafe fn zero() -> __m256i {
            // SAFETY: AVX2 is enabled by the caller's contract.
            unsafe { _mm256_setzero_si256() }
        }

        #[inline(always)]
        unsafe fn load(p: *const u8) -> __m256i {
            // SAFETY: 32 readable bytes at `p` (caller); unaligned load.
            unsafe { _mm256_loadu_si256(p.cast()) }
        }

        #[inline(always)]
        unsafe fn splat(a4: i32) -> __m256i {
            // SAFETY: AVX2 is enabled by the caller's contract.
            unsafe { _mm256_set1_epi32(a4) }
        }

        #[inline(always)]
        unsafe fn dot(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            // SAFETY: AVX2 is enabled by the caller's contract.
            unsafe {
                let pairs = _mm256_maddubs_epi16(a, b);
                let quads = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
                _mm256_add_epi32(acc, quads)
            }
        }

        #[inline(always)]
        unsafe fn store(p: *mut i32, v: __m256i) {
            // SAFETY: 32 writable bytes at `p` (caller); unaligned store.
            unsafe { _mm256_storeu_si256(p.cast(), v) }
        }
    }

    /// AVX-VNNI: as [`Avx2Ops`] but `dot` is one 256-bit `vpdpbusd`.
    pub(super) struct AvxVnniOps;

    // SAFETY: `vpdpbusd` computes exactly acc + Σ u8·i8 over each lane's 4 bytes (no saturation in
    // this non-`s` form, and the sum cannot overflow for k ≤ MAX_K). Used only after detecting
    // AVX2 and AVX-VNNI.
    unsafe impl I8Simd for AvxVnniOps {
        type V = __m256i;
        const LANES: usize = 8;

        #[inline(always)]
        unsafe fn zero() -> __m256i {
            // SAFETY: same contract as Avx2Ops.
            unsafe { Avx2Ops::zero() }
        }

        #[inline(always)]
        unsafe fn load(p: *const u8) -> __m256i {
            // SAFETY: same contract as Avx2Ops.
            unsafe { Avx2Ops::load(p) }
        }

        #[inline(always)]
        unsafe fn splat(a4: i32) -> __m256i {
            // SAFETY: same contract as Avx2Ops.
            unsafe { Avx2Ops::splat(a4) }
        }

        #[inline(always)]
        unsafe fn dot(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            // SAFETY: AVX-VNNI is enabled by the caller's contract.
            unsafe { _mm256_dpbusd_avx_epi32(acc, a, b) }
        }

        #[inline(always)]
        unsafe fn store(p: *mut i32, v: __m256i) {
            // SAFETY: same contract as Avx2Ops.
            unsafe { Avx2Ops::store(p, v) }
        }
    }

    /// AVX-512 VNNI: 512-bit vectors, `dot` is one `vpdpbusd`.
    pub(super) struct Avx512VnniOps;

    // SAFETY: as AvxVnniOps, on 16 lanes; load/store move 64 bytes. Used only after detecting
    // AVX-512 F, BW and VNNI.
    unsafe impl I8Simd for Avx512VnniOps {
        type V = __m512i;
        const LANES: usize = 16;

        #[inline(always)]
        unsafe fn zero() -> __m512i {
            // SAFETY: AVX-512 F is enabled by the caller's contract.
            unsafe { _mm512_setzero_si512() }
        }

        #[inline(always)]
        unsafe fn load(p: *const u8) -> __m512i {
            // SAFETY: 64 readable bytes at `p` (caller); unaligned load.
            unsafe { _mm512_loadu_si512(p.cast()) }
        }

        #[inline(always)]
        unsafe fn splat(a4: i32) -> __m512i {
            // SAFETY: AVX-512 F is enabled by the caller's contract.
            unsafe { _mm512_set1_epi32(a4) }
        }

        #[inline(always)]
        unsafe fn dot(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512 VNNI is enabled by the caller's contract.
            unsafe { _mm512_dpbusd_epi32(acc, a, b) }
        }

        #[inline(always)]
        unsafe fn store(p: *mut i32, v: __m512i) {
            // SAFETY: 64 writable bytes at `p` (caller); unaligned store.
            unsafe { _mm512_storeu_si512(p.cast(), v) }
        }
    }
}

/// `out[r · ldo + c] = Σ_k a_rows[r][k] · panel[k, c]` for an `MR × (NV · LANES)` tile.
///
/// # Safety
/// Each `a_rows[r]` points to `4 · groups` readable bytes, `b` to `groups · NV · LANES · 4`,
/// `out` to `(MR − 1) · ldo + NV · LANES` writable i32; the CPU supports `S`.
#[inline(always)]
unsafe fn micro<S: I8Simd, const MR: usize, const NV: usize>(
    a_rows: &[*const u8; MR],
    b: *const u8,
    groups: usize,
    out: *mut i32,
    ldo: usize,
) {
    // SAFETY: every access stays within the extents the caller guarantees.
    unsafe {
        let mut acc = [[S::zero(); NV]; MR];
        let mut bp = b;
        for g in 0..groups {
            let mut bv = [S::zero(); NV];
            for (v, slot) in bv.iter_mut().enumerate() {
                *slot = S::load(bp.add(v * S::LANES * 4));
            }
            for (row, acc_row) in a_rows.iter().zip(acc.iter_mut()) {
                let a = S::splat(row.add(4 * g).cast::<i32>().read_unaligned());
                for (slot, &w) in acc_row.iter_mut().zip(&bv) {
                    *slot = S::dot(*slot, a, w);
                }
            }
            bp = bp.add(NV * S::LANES * 4);
        }
        for (r, acc_row) in acc.iter().enumerate() {
            for (v, &x) in acc_row.iter().enumerate() {
                S::store(out.add(r * ldo + v * S::LANES), x);
            }
        }
    }
}

/// Receives finished accumulator row segments.
trait Sink: Sync {
    /// Handles `acc`, the accumulators of row `row`, columns `col0 .. col0 + acc.len()`.
    ///
    /// # Safety
    /// No other call writes the same row segment concurrently; `row < m` and the columns `< n` of
    /// the product being computed.
    unsafe fn write(&self, row: usize, col0: usize, acc: &[i32]);
}

/// The production sink: dequantizes into `C`.
struct DequantSink<'a> {
    params: &'a [RowQuant],
    scales: &'a [f32],
    colsums: &'a [i32],
    bias: Option<&'a [f32]>,
    c: *mut f32,
    ldc: usize,
}

// SAFETY: the raw pointer is only written through `write`, whose callers write disjoint segments.
unsafe impl Sync for DequantSink<'_> {}

impl Sink for DequantSink<'_> {
    #[inline(always)]
    unsafe fn write(&self, row: usize, col0: usize, acc: &[i32]) {
        let cols = col0..col0 + acc.len();
        // SAFETY: `qgemm` checked that C holds row `row`'s columns `< n` at stride `ldc`; no one
        // else writes this segment (caller).
        let out = unsafe { std::slice::from_raw_parts_mut(self.c.add(row * self.ldc + col0), acc.len()) };
        let RowQuant { scale, zp } = self.params[row];
        let terms = out
            .iter_mut()
            .zip(acc)
            .zip(&self.colsums[cols.clone()])
            .zip(&self.scales[cols.clone()]);
        match self.bias {
            Some(bias) => {
                for ((((o, &a), &cs), &sw), &b) in terms.zip(&bias[cols]) {
                    *o = dequant(a, zp, cs, scale, sw) + b;
                }
            }
            None => {
                for (((o, &a), &cs), &sw) in terms {
                    *o = dequant(a, zp, cs, scale, sw);
                }
            }
        }
    }
}

/// Computes rows `rows` × column panels `panels` of `a · b` and hands them to `sink`.
///
/// # Safety
/// The CPU supports `S`; `MR`, `NV · S::LANES` are `b`'s tile; `rows` lie within `a`, `panels`
/// within `b`; the sink's contract holds for this task's rows and columns.
#[inline(always)]
unsafe fn task<S: I8Simd, const MR: usize, const NV: usize, K: Sink>(
    a: &QuantizedRows,
    b: &PackedI8,
    sink: &K,
    rows: Range<usize>,
    panels: Range<usize>,
) {
    let nr = NV * S::LANES;
    assert!(
        nr == b.nr && MR * nr <= TILE_MAX && a.kp == b.kp,
        "qgemm: tile does not match the packing"
    );
    let kp = a.kp;
    let groups = kp / 4;
    let adata = &a.data[..a.m * kp];
    let mut tile = [0i32; TILE_MAX];
    for p in panels {
        let panel = b.panel(p);
        let col0 = p * nr;
        let ncols = nr.min(b.n - col0);
        let mut r0 = rows.start;
        while r0 < rows.end {
            let live = MR.min(rows.end - r0);
            // Rows past the end repeat the last one; their results are dropped.
            let a_rows: [*const u8; MR] = std::array::from_fn(|i| adata[(r0 + i.min(live - 1)) * kp..][..kp].as_ptr());
            // SAFETY: each row pointer has kp = 4 · groups bytes, `panel` groups · nr · 4 (sliced
            // above), `tile` MR · nr ≤ TILE_MAX i32 at stride nr (asserted); the CPU supports `S`.
            unsafe { micro::<S, MR, NV>(&a_rows, panel.as_ptr(), groups, tile.as_mut_ptr(), nr) };
            for i in 0..live {
                // SAFETY: row r0 + i < a.m and columns < n; this task owns them (caller).
                unsafe { sink.write(r0 + i, col0, &tile[i * nr..i * nr + ncols]) };
            }
            r0 += MR;
        }
    }
}

/// # Safety
/// As [`task`]; the CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn task_avx2<K: Sink>(a: &QuantizedRows, b: &PackedI8, sink: &K, rows: Range<usize>, panels: Range<usize>) {
    // SAFETY: forwarded from the caller.
    unsafe { task::<x86::Avx2Ops, AVX2_MR, AVX2_NV, K>(a, b, sink, rows, panels) }
}

/// # Safety
/// As [`task`]; the CPU supports AVX2 and AVX-VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn task_avxvnni<K: Sink>(a: &QuantizedRows, b: &PackedI8, sink: &K, rows: Range<usize>, panels: Range<usize>) {
    // SAFETY: forwarded from the caller.
    unsafe { task::<x86::AvxVnniOps, AVXVNNI_MR, AVXVNNI_NV, K>(a, b, sink, rows, panels) }
}

/// # Safety
/// As [`task`]; the CPU supports AVX-512 F, BW and VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn task_avx512vnni<K: Sink>(
    a: &QuantizedRows,
    b: &PackedI8,
    sink: &K,
    rows: Range<usize>,
    panels: Range<usize>,
) {
    // SAFETY: forwarded from the caller.
    unsafe { task::<x86::Avx512VnniOps, AVX512_MR, AVX512_NV, K>(a, b, sink, rows, panels) }
}

/// The AMX path: Intel's tile registers and `tdpbusd` (Sapphire Rapids and later), about eight
/// times the multiply-add rate of AVX-512 VNNI.
///
/// Rust's AMX intrinsics are unstable, so the tile instructions are written as inline assembly on
/// fixed tile registers, which the compiler never allocates. Linux hands out the 8 KiB of tile
/// state only to processes that ask for it (`arch_prctl(ARCH_REQ_XCOMP_PERM)`); [`usable`] asks
/// once and the path is offered only when the kernel grants it.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod amx {
    use std::arch::asm;
    use std::ops::Range;
    use std::sync::OnceLock;

    use super::{AMX_MR, AMX_NR, PackedI8, QuantizedRows, Sink, TILE_MAX};

    /// `arch_prctl` code asking for permission to use an extended state component.
    const ARCH_REQ_XCOMP_PERM: libc::c_ulong = 0x1023;
    /// The extended state component of the tile data.
    const XFEATURE_XTILEDATA: libc::c_ulong = 18;

    /// Whether the CPU has AMX-TILE and AMX-INT8 (and AVX-512 F/BW for the epilogue) and the kernel
    /// lets this process use the tiles. Cached.
    pub(super) fn usable() -> bool {
        static USABLE: OnceLock<bool> = OnceLock::new();
        *USABLE.get_or_init(|| {
            // CPUID leaf 7, EDX bits 24 and 25: AMX-TILE and AMX-INT8 (`is_x86_feature_detected!`
            // does not name AMX on stable Rust).
            let leaf = std::arch::x86_64::__cpuid_count(7, 0);
            let cpu = is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && (leaf.edx >> 24) & 1 == 1
                && (leaf.edx >> 25) & 1 == 1;
            // SAFETY: a plain system call with integer arguments; it only changes what this
            // process may do.
            cpu && unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) } == 0
        })
    }

    /// The `ldtilecfg` operand: palette 1, all eight tiles 16 rows × 64 bytes.
    #[repr(C, align(64))]
    struct TileConfig {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        colsb: [u16; 16],
        rows: [u8; 16],
        tail: [u8; 16],
    }

    const CONFIG: TileConfig = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
        rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
        tail: [0; 16],
    };

    /// Computes rows `rows` × column panels `panels` of `a · b` on AMX tiles and hands them to
    /// `sink`.
    ///
    /// # Safety
    /// [`usable`] returned true; `b` is packed for [`super::I8Path::Amx`]; `rows` lie within `a`
    /// and start at a multiple of 32, `panels` within `b`; the sink's contract holds for this
    /// task's rows and columns.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn task<K: Sink>(
        a: &QuantizedRows,
        b: &PackedI8,
        sink: &K,
        rows: Range<usize>,
        panels: Range<usize>,
    ) {
        let kp = a.kp;
        assert!(
            b.nr == AMX_NR && a.kp == b.kp && kp.is_multiple_of(64) && rows.start.is_multiple_of(AMX_MR),
            "qgemm: tile does not match the packing"
        );
        // Whole 32-row tiles are loaded, past `m` too.
        assert!(
            a.data.len() >= a.m.next_multiple_of(AMX_MR) * kp,
            "qgemm: activation rows are not padded for AMX"
        );
        let groups = kp / 4;
        let blocks = kp / 64;
        let mut tile = [0i32; TILE_MAX];
        let out = tile.as_mut_ptr();
        let (lda, ldb, ldc) = (kp, 64usize, AMX_NR * 4);
        // SAFETY: the configuration is a valid palette-1 layout; the process holds the tile
        // permission (`usable`, caller).
        unsafe { asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly)) };
        for p in panels {
            let panel = b.panel(p);
            let col0 = p * AMX_NR;
            let ncols = AMX_NR.min(b.n - col0);
            let mut r0 = rows.start;
            while r0 < rows.end {
                let live = AMX_MR.min(rows.end - r0);
                let a0 = a.data[r0 * kp..].as_ptr();
                // SAFETY: rows r0 .. r0 + 32 lie in `a.data` (asserted above, r0 < m); the two
                // weight runs of the panel are `groups · 64` bytes each (the panel is sliced to
                // both), and tile k-block `kb` reads 16 rows of 64 bytes at `kb · 1024` in each;
                // `tile` holds 32 × 32 i32 at a stride of 128 bytes.
                unsafe {
                    let a1 = a0.add(16 * kp);
                    let b0 = panel.as_ptr();
                    let b1 = b0.add(groups * 64);
                    asm!(
                        "tilezero tmm0",
                        "tilezero tmm1",
                        "tilezero tmm2",
                        "tilezero tmm3",
                        options(nostack, nomem)
                    );
                    for kb in 0..blocks {
                        asm!(
                            "tileloadd tmm4, [{a0} + {lda} * 1]",
                            "tileloadd tmm5, [{a1} + {lda} * 1]",
                            "tileloadd tmm6, [{b0} + {ldb} * 1]",
                            "tileloadd tmm7, [{b1} + {ldb} * 1]",
                            "tdpbusd tmm0, tmm4, tmm6",
                            "tdpbusd tmm1, tmm4, tmm7",
                            "tdpbusd tmm2, tmm5, tmm6",
                            "tdpbusd tmm3, tmm5, tmm7",
                            a0 = in(reg) a0.add(kb * 64),
                            a1 = in(reg) a1.add(kb * 64),
                            b0 = in(reg) b0.add(kb * 1024),
                            b1 = in(reg) b1.add(kb * 1024),
                            lda = in(reg) lda,
                            ldb = in(reg) ldb,
                            options(nostack, readonly)
                        );
                    }
                    asm!(
                        "tilestored [{c0} + {ldc} * 1], tmm0",
                        "tilestored [{c1} + {ldc} * 1], tmm1",
                        "tilestored [{c2} + {ldc} * 1], tmm2",
                        "tilestored [{c3} + {ldc} * 1], tmm3",
                        c0 = in(reg) out,
                        c1 = in(reg) out.add(16),
                        c2 = in(reg) out.add(16 * AMX_NR),
                        c3 = in(reg) out.add(16 * AMX_NR + 16),
                        ldc = in(reg) ldc,
                        options(nostack)
                    );
                }
                for i in 0..live {
                    // SAFETY: row r0 + i < a.m and columns < n; this task owns them (caller).
                    unsafe { sink.write(r0 + i, col0, &tile[i * AMX_NR..i * AMX_NR + ncols]) };
                }
                r0 += AMX_MR;
            }
        }
        // SAFETY: returns the tiles to their initial state, so context switches need not save
        // them.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// Computes `a · b` over the rayon pool, handing tiles to `sink`.
///
/// # Safety
/// `sink` accepts every row `< a.rows()` and column `< b.n()` (each written exactly once).
unsafe fn drive<K: Sink>(a: &QuantizedRows, b: &PackedI8, sink: &K) {
    assert_eq!(
        a.k, b.k,
        "qgemm: A has {} columns but the weights have k = {} rows",
        a.k, b.k
    );
    // `PackedI8` is only built for supported paths; checked again since the kernels rely on it.
    assert!(
        b.path.supported(),
        "qgemm: this CPU cannot run the {} int8 path",
        b.path.name()
    );
    let m = a.m;
    if m == 0 {
        return;
    }
    let (mr, nr) = b.path.tile();
    let panels = b.n.div_ceil(nr);
    let rows_per_block = (ROW_BLOCK / mr).max(1) * mr;
    let row_blocks = m.div_ceil(rows_per_block);
    let threads = if m * b.n * b.kp < PAR_MIN_WORK {
        1
    } else {
        rayon::current_num_threads()
    };
    // Aim for a few tasks per thread; split the columns when the rows alone do not give them.
    let wanted = 4 * threads;
    let panels_per_group = if threads == 1 || row_blocks >= wanted {
        panels
    } else {
        panels.div_ceil(wanted.div_ceil(row_blocks)).max(1)
    };
    let col_groups = panels.div_ceil(panels_per_group);
    let run = |t: usize| {
        let (rb, cg) = (t / col_groups, t % col_groups);
        let rows = rb * rows_per_block..m.min((rb + 1) * rows_per_block);
        let pans = cg * panels_per_group..panels.min((cg + 1) * panels_per_group);
        match b.path {
            // SAFETY: tasks cover disjoint rows × panels inside a × b (sink contract from the
            // caller); the path's CPU support was asserted above; tiles match `tile()`.
            I8Path::Scalar => unsafe { task::<ScalarOps, SCALAR_MR, SCALAR_NV, K>(a, b, sink, rows, pans) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            I8Path::Avx2 => unsafe { task_avx2(a, b, sink, rows, pans) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            I8Path::AvxVnni => unsafe { task_avxvnni(a, b, sink, rows, pans) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            I8Path::Avx512Vnni => unsafe { task_avx512vnni(a, b, sink, rows, pans) },
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            // SAFETY: as above; `usable()` also obtained the kernel's permission to use AMX tiles.
            I8Path::Amx => unsafe { amx::task(a, b, sink, rows, pans) },
            #[allow(unreachable_patterns)]
            _ => unreachable!("qgemm: the {} path does not exist on this architecture", b.path.name()),
        }
    };
    let tasks = row_blocks * col_groups;
    if threads == 1 {
        (0..tasks).for_each(run);
    } else {
        (0..tasks).into_par_iter().for_each(run);
    }
}

/// `C[m, n] = dequant(QA · QW) (+ bias)`, `C` row-major with row stride `ldc`, overwritten.
/// Parallel on the rayon global pool over row blocks (and column panels when `m` is small).
pub(crate) fn qgemm(a: &QuantizedRows, b: &PackedI8, bias: Option<&[f32]>, c: &mut [f32], ldc: usize) {
    let (m, n) = (a.m, b.n);
    assert!(ldc >= n, "qgemm: row stride ldc = {ldc} is below n = {n}");
    if let Some(bias) = bias {
        assert_eq!(bias.len(), n, "qgemm: bias holds {} values, not n = {n}", bias.len());
    }
    if m == 0 {
        return;
    }
    let need = (m - 1) * ldc + n;
    assert!(
        c.len() >= need,
        "qgemm: C holds {} values, [{m}, {n}] with ldc {ldc} needs {need}",
        c.len()
    );
    let sink = DequantSink {
        params: &a.params[..m],
        scales: &b.scales,
        colsums: &b.colsums,
        bias,
        c: c.as_mut_ptr(),
        ldc,
    };
    // SAFETY: C holds every row < m, column < n at stride ldc (asserted); `drive` writes each once.
    unsafe { drive(a, b, &sink) }
}

thread_local! {
    static SCRATCH: Cell<QuantizedRows> = const { Cell::new(QuantizedRows::new()) };
}

/// Quantizes `a [m, k]` (row stride `lda`, `k = b.k()`) into a thread-local [`QuantizedRows`] and
/// runs [`qgemm`].
pub(crate) fn qgemm_f32(
    a: &[f32],
    lda: usize,
    m: usize,
    b: &PackedI8,
    bias: Option<&[f32]>,
    c: &mut [f32],
    ldc: usize,
) {
    // Taken out of the cell rather than borrowed: a rayon worker waiting in `qgemm` may run another
    // `qgemm_f32` on this thread, which then simply starts from an empty buffer.
    let mut qa = SCRATCH.take();
    qa.quantize(a, lda, m, b.k);
    qgemm(&qa, b, bias, c, ldc);
    SCRATCH.set(qa);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic xorshift generator with uniform and normal samples.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn uniform(&mut self) -> f32 {
            (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
        }

        fn normal(&mut self) -> f32 {
            let (u1, u2) = (self.uniform().max(1e-7), self.uniform());
            (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        }

        fn normals(&mut self, len: usize) -> Vec<f32> {
            (0..len).map(|_| self.normal()).collect()
        }
    }

    /// Collects raw accumulators into an i32 matrix (stride n).
    struct AccSink {
        out: *mut i32,
        n: usize,
    }

    // SAFETY: written only through `write`, on disjoint segments.
    unsafe impl Sync for AccSink {}

    impl Sink for AccSink {
        unsafe fn write(&self, row: usize, col0: usize, acc: &[i32]) {
            // SAFETY: the buffer is m × n and the segment lies inside it (contract).
            let out = unsafe { std::slice::from_raw_parts_mut(self.out.add(row * self.n + col0), acc.len()) };
            out.copy_from_slice(acc);
        }
    }

    fn accumulators(a: &QuantizedRows, b: &PackedI8) -> Vec<i32> {
        let mut acc = vec![i32::MIN; a.rows() * b.n()];
        let sink = AccSink {
            out: acc.as_mut_ptr(),
            n: b.n(),
        };
        // SAFETY: the buffer holds m × n accumulators.
        unsafe { drive(a, b, &sink) };
        acc
    }

    /// i64 reference from the unpacked quantized weights and activations.
    fn reference_acc(a: &QuantizedRows, qw: &[i8], n: usize) -> Vec<i64> {
        let (m, k, kp) = (a.m, a.k, a.kp);
        let mut acc = vec![0i64; m * n];
        for i in 0..m {
            for kk in 0..k {
                let x = i64::from(a.data[i * kp + kk]);
                for j in 0..n {
                    acc[i * n + j] += x * i64::from(qw[kk * n + j]);
                }
            }
        }
        acc
    }

    /// Every path against the i64 reference, and bit-identical outputs across paths.
    fn check_shape(rng: &mut Rng, m: usize, k: usize, n: usize, lda: usize, ldc: usize, bias: bool) {
        let a = rng.normals(m.saturating_sub(1) * lda + k);
        let w = rng.normals(k * n);
        let bias = bias.then(|| rng.normals(n));
        let mut qa = QuantizedRows::new();
        qa.quantize(&a, lda, m, k);
        let (qw, scales, colsums) = quantize_weights(&w, k, n);
        let want_acc = reference_acc(&qa, &qw, n);
        let mut want = vec![f32::NAN; m.saturating_sub(1) * ldc + n];
        for i in 0..m {
            let RowQuant { scale, zp } = qa.params[i];
            for j in 0..n {
                let acc = i32::try_from(want_acc[i * n + j]).expect("accumulator fits i32");
                let mut v = dequant(acc, zp, colsums[j], scale, scales[j]);
                if let Some(bias) = &bias {
                    v += bias[j];
                }
                want[i * ldc + j] = v;
            }
        }
        for path in I8Path::available() {
            let packed = PackedI8::quantize_for(&w, k, n, path);
            let acc = accumulators(&qa, &packed);
            for (x, &y) in acc.iter().zip(&want_acc) {
                assert_eq!(i64::from(*x), y, "{path:?} accumulator, m={m} k={k} n={n}");
            }
            let mut c = vec![f32::NAN; want.len()];
            qgemm(&qa, &packed, bias.as_deref(), &mut c, ldc);
            for (i, (x, y)) in c.iter().zip(&want).enumerate() {
                let pad = i % ldc >= n;
                assert!(
                    if pad { x.is_nan() } else { x.to_bits() == y.to_bits() },
                    "{path:?} output {i}: {x} vs {y}, m={m} k={k} n={n} lda={lda} ldc={ldc}"
                );
            }
        }
    }

    #[test]
    fn paths_match_reference_on_awkward_shapes() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for &m in &[1, 3, 7, 33] {
            for &k in &[1, 3, 5, 63, 64, 65, 384, 1536, 1537] {
                for &n in &[1, 15, 17, 33] {
                    check_shape(&mut rng, m, k, n, k, n, (m + k + n) % 2 == 0);
                }
            }
        }
        let wide = [
            (7, 384, 384),
            (33, 1536, 384),
            (3, 1537, 1152),
            (33, 384, 1152),
            (1, 65, 1152),
            (3, 5, 384),
        ];
        for &(m, k, n) in &wide {
            check_shape(&mut rng, m, k, n, k, n, true);
        }
    }

    #[test]
    fn paths_match_reference_with_strides() {
        let mut rng = Rng(7);
        check_shape(&mut rng, 7, 63, 33, 70, 40, true);
        check_shape(&mut rng, 33, 65, 17, 65 + 3, 17 + 5, false);
        check_shape(&mut rng, 3, 384, 1152, 400, 1160, true);
    }

    #[test]
    fn one_512_token_sequence() {
        let mut rng = Rng(512);
        check_shape(&mut rng, 512, 384, 384, 384, 384, true);
        check_shape(&mut rng, 512, 1536, 33, 1536, 33, false);
        check_shape(&mut rng, 512, 384, 1152, 384, 1152, false);
    }

    #[test]
    fn weight_quantization_properties() {
        let (k, n) = (37, 6);
        let mut rng = Rng(3);
        let mut w = rng.normals(k * n);
        for kk in 0..k {
            w[kk * n] = 0.0; // all-zero column
            w[kk * n + 1] = w[kk * n + 1].abs() + 0.1; // positive only
            w[kk * n + 2] = -w[kk * n + 2].abs() - 0.1; // negative only
        }
        w[5 * n + 3] = 1.0e4; // a huge outlier
        w[9 * n + 4] = 1.0e-30; // a tiny-only column apart from zeros
        for kk in 0..k {
            if kk != 9 {
                w[kk * n + 4] = 0.0;
            }
        }
        let (q, scales, colsums) = quantize_weights(&w, k, n);
        assert_eq!(scales[0], 1.0);
        for j in 0..n {
            assert!(scales[j].is_finite() && scales[j] > 0.0);
            let mut sum = 0;
            for kk in 0..k {
                let x = w[kk * n + j];
                let qv = q[kk * n + j];
                assert!((-127..=127).contains(&qv));
                let err = (f32::from(qv) * scales[j] - x).abs();
                assert!(
                    err <= scales[j] * 0.5 * (1.0 + 1e-5),
                    "column {j}: {x} → {qv}·{} err {err}",
                    scales[j]
                );
                sum += i32::from(qv);
            }
            assert_eq!(sum, colsums[j]);
        }
        // The column maximum maps to ±127.
        assert_eq!(q[5 * n + 3], 127);
    }

    #[test]
    fn activation_quantization_properties() {
        let mut rng = Rng(11);
        let k = 45;
        let mut rows: Vec<Vec<f32>> = vec![
            vec![0.0; k],
            rng.normals(k).iter().map(|x| x.abs() + 0.5).collect(),
            rng.normals(k).iter().map(|x| -x.abs() - 0.5).collect(),
            rng.normals(k),
            vec![3.5; k],
            vec![-1.0e-3; k],
            vec![1.0e-40; k],
        ];
        let mut outlier = rng.normals(k);
        outlier[17] = 1.0e5;
        rows.push(outlier);
        let m = rows.len();
        let a: Vec<f32> = rows.concat();
        let mut qa = QuantizedRows::new();
        qa.quantize(&a, k, m, k);
        assert_eq!(qa.rows(), m);
        assert_eq!(qa.params[0], RowQuant { scale: 1.0, zp: 0 });
        assert_eq!(qa.params[1].zp, 0, "positive-only rows need no zero point");
        assert_eq!(qa.params[2].zp, 127, "negative-only rows sit at the top");
        for (i, row) in rows.iter().enumerate() {
            let RowQuant { scale, zp } = qa.params[i];
            assert!(scale.is_finite() && scale > 0.0 && (0..=127).contains(&zp));
            for (kk, &x) in row.iter().enumerate() {
                let q = qa.data[i * qa.kp + kk];
                assert!(q <= 127);
                let back = (i32::from(q) - zp) as f32 * scale;
                let err = (back - x).abs();
                assert!(
                    err <= scale * 0.5 * (1.0 + 1e-5) + 1e-45,
                    "row {i}[{kk}]: {x} → {q} (zp {zp}) err {err}"
                );
            }
            assert!(
                qa.data[i * qa.kp + k..(i + 1) * qa.kp].iter().all(|&b| b == 0),
                "padding is zero"
            );
        }
        // Reuse with a smaller shape replaces the contents.
        qa.quantize(&a[..2 * k], k, 2, k);
        assert_eq!(qa.rows(), 2);
    }

    #[test]
    fn outputs_are_nan_free_on_degenerate_data() {
        let (m, k, n) = (5, 20, 19);
        let mut a = vec![0.0f32; m * k];
        a[k..2 * k].fill(1.0e15);
        a[2 * k..3 * k].fill(-1.0e15);
        a[3 * k + 4] = 6.0e4;
        let mut w = vec![0.0f32; k * n];
        w[3 * n + 7] = 1.0e-30;
        w[4 * n + 8] = -2.0e20;
        for path in I8Path::available() {
            let packed = PackedI8::quantize_for(&w, k, n, path);
            let mut c = vec![0.0; m * n];
            qgemm_f32(&a, k, m, &packed, None, &mut c, n);
            assert!(c.iter().all(|x| x.is_finite()), "{path:?}: {c:?}");
        }
    }

    /// Relative Frobenius error against the f32 product on N(0, 1) data. Each activation carries a
    /// rounding error uniform in ±s_a/2 (std s_a/√12) and each weight ±s_w/2. For a row of k normal
    /// values the range is about 2·3.2σ (k = 384), so s_a ≈ 6.4/127 ≈ 0.05σ and the activation
    /// error is ≈ 0.05/√12 ≈ 1.5% of σ; weights (symmetric, max ≈ 3σ, s_w ≈ 3/127) add ≈ 0.7%.
    /// Independent errors add in quadrature: ≈ 1.6% of the product's size (measured 1.5% at
    /// k = 384, 1.7% at k = 1536, where rows span a wider range). The bound is 2.5%.
    #[test]
    fn accuracy_against_f32() {
        let mut rng = Rng(2024);
        for &(m, k, n) in &[(64, 384, 384), (16, 1536, 384)] {
            let a = rng.normals(m * k);
            let w = rng.normals(k * n);
            let mut exact = vec![0f64; m * n];
            for i in 0..m {
                for kk in 0..k {
                    let x = f64::from(a[i * k + kk]);
                    for j in 0..n {
                        exact[i * n + j] += x * f64::from(w[kk * n + j]);
                    }
                }
            }
            for path in I8Path::available() {
                let packed = PackedI8::quantize_for(&w, k, n, path);
                let mut c = vec![0f32; m * n];
                qgemm_f32(&a, k, m, &packed, None, &mut c, n);
                let err: f64 = c.iter().zip(&exact).map(|(&x, &y)| (f64::from(x) - y).powi(2)).sum();
                let norm: f64 = exact.iter().map(|y| y * y).sum();
                let rel = (err / norm).sqrt();
                assert!(rel < 0.025, "{path:?} m={m} k={k} n={n}: relative error {rel}");
                assert!(rel > 1e-4, "suspiciously exact: {rel}");
            }
        }
    }

    #[test]
    fn row_quantization_is_the_same_on_every_simd_build() {
        let mut rng = Rng(11);
        let mut builds = vec![RowSimd::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") {
                builds.push(RowSimd::Avx2);
            }
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") {
                builds.push(RowSimd::Avx512);
            }
        }
        eprintln!("row quantization builds on this CPU: {builds:?}");
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            1e-40,
            -3e38,
            3e38,
        ];
        for len in [1, 5, 15, 16, 17, 31, 64, 383, 384, 1536] {
            for case in 0..4 {
                let mut x: Vec<f32> = rng.normals(len).iter().map(|v| v * 3.0).collect();
                match case {
                    1 => x.iter_mut().for_each(|v| *v = v.abs() + 0.5),
                    2 => x.iter_mut().for_each(|v| *v = -v.abs() * 1e-30),
                    3 => {
                        for (i, v) in x.iter_mut().enumerate().filter(|(i, _)| i % 7 == 3) {
                            *v = specials[i % specials.len()];
                        }
                    }
                    _ => {}
                }
                let mut want = vec![0xAAu8; len.next_multiple_of(64)];
                let want_q = quantize_row_impl(&x, &mut want);
                for &simd in &builds {
                    let mut got = vec![0x55u8; want.len()];
                    let got_q = quantize_row(&x, &mut got, simd);
                    assert_eq!(got_q, want_q, "{simd:?} len {len} case {case}");
                    assert_eq!(got, want, "{simd:?} len {len} case {case}");
                }
            }
        }
    }

    #[test]
    fn path_selection() {
        let all = [I8Path::Scalar, I8Path::Avx2, I8Path::AvxVnni, I8Path::Avx512Vnni];
        for p in I8Path::ALL {
            assert_eq!(I8Path::from_name(p.name()), Some(p));
        }
        let avx2_only = [I8Path::Scalar, I8Path::Avx2];
        assert_eq!(select_path(None, &all), I8Path::Avx512Vnni);
        assert_eq!(select_path(None, &avx2_only), I8Path::Avx2);
        assert_eq!(select_path(Some("scalar"), &avx2_only), I8Path::Scalar);
        assert_eq!(select_path(Some("avx2"), &all), I8Path::Avx2);
        assert_eq!(select_path(Some("avxvnni"), &all), I8Path::AvxVnni);
        assert_eq!(
            select_path(Some("avx512vnni"), &avx2_only),
            I8Path::Avx2,
            "unavailable → fastest"
        );
        assert_eq!(
            select_path(Some("avx512"), &all),
            I8Path::Avx512Vnni,
            "other family → fastest"
        );
        assert_eq!(select_path(Some("bogus"), &[I8Path::Scalar]), I8Path::Scalar);
        for p in all {
            assert_eq!(I8Path::from_name(p.name()), Some(p));
        }
        assert_eq!(select_path(Some("amx"), &avx2_only), I8Path::Avx2);
        let with_amx = [I8Path::Scalar, I8Path::Avx512Vnni, I8Path::Amx];
        assert_eq!(select_path(None, &with_amx), I8Path::Amx);
        assert_eq!(select_path(Some("avx512vnni"), &with_amx), I8Path::Avx512Vnni);
        let available = I8Path::available();
        eprintln!("int8 paths on this CPU: {available:?}");
        assert_eq!(available[0], I8Path::Scalar);
        assert!(available.contains(&I8Path::chosen()));
    }

    #[test]
    fn packed_metadata() {
        let (k, n) = (65, 33);
        let w = Rng(5).normals(k * n);
        let p = PackedI8::quantize(&w, k, n);
        assert_eq!((p.k(), p.n(), p.path()), (k, n, I8Path::chosen()));
        assert!(p.bytes() >= 68 * 33 + 8 * 33);
    }

    #[test]
    #[should_panic(expected = "columns but the weights have k")]
    fn mismatched_k_panics() {
        let p = PackedI8::quantize_for(&[0.0; 12], 4, 3, I8Path::Scalar);
        let mut qa = QuantizedRows::new();
        qa.quantize(&[0.0; 10], 5, 2, 5);
        qgemm(&qa, &p, None, &mut [0.0; 6], 3);
    }

    #[test]
    #[should_panic(expected = "C holds")]
    fn short_output_panics() {
        let p = PackedI8::quantize_for(&[0.0; 12], 4, 3, I8Path::Scalar);
        let mut qa = QuantizedRows::new();
        qa.quantize(&[0.0; 8], 4, 2, 4);
        qgemm(&qa, &p, None, &mut [0.0; 5], 3);
    }
}
