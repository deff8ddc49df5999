//! Packed single-precision GEMM for the CPU forward pass: `C = A · B (+ bias)`.
//!
//! **Packing.** B `[k, n]` is packed once (weights at load time; attention's `K^T` and `V` per call
//! through [`PackedF32::repack_strided`]) into column panels `NR` wide: panel `j` holds columns
//! `j*NR .. j*NR + NR` as `k` consecutive rows of `NR` floats, zero-padded past `n`. The micro-kernel
//! therefore reads B as one sequential stream and any depth block of a panel is contiguous. The
//! buffer starts on a 64-byte boundary so every `NR`-float row is whole cache lines.
//!
//! A is not packed: the micro-kernel broadcasts from `MR` rows in place (row stride `lda`). Each
//! row's depth block is one contiguous run, so this touches as many cache lines as a packed copy
//! would, without the copy (measured: no slower than packing MR-row panels, and the per-call path
//! needs no scratch at all). Rows left over below `MR` go through exact-height kernels (8/4/2/1
//! rows), so nothing is read past `m` and no work is wasted on padding rows.
//!
//! **Loop nest** (BLIS): per `MC`-row block, per `KC`-deep block, per `NR`-column panel (its `KC × NR`
//! slice stays in L1), per `MR`-row micro-panel: `MR × NR` accumulators live in registers and are
//! stored once per depth block — the first block writes `acc + bias`, later blocks add to C. The
//! tile's C lines are prefetched before its depth loop, since C is usually cold.
//!
//! **Threads.** [`sgemm`] splits C into a grid of tasks over the rayon pool: row blocks when A is
//! tall, column-panel groups when it is short; tiny products stay on the calling thread.
//!
//! **Dispatch.** One generic micro-kernel and driver over the [`Simd`] trait, instantiated for a
//! portable `[f32; 8]` type (Scalar, 4×16), `__m256` (AVX2+FMA, 6×16) and `__m512` (AVX-512F,
//! 12×32). The x86 entry points are `#[target_feature]` functions that inline the generic code, so
//! the intrinsics inline. [`F32Path::chosen`] picks the path once; a packed B remembers the path it
//! was packed for, since the panel width differs between paths.

use std::ops::Range;
use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use rayon::prelude::*;

/// SIMD path of the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum F32Path {
    /// Portable Rust (8-wide arrays the compiler may vectorise); runs everywhere.
    Scalar,
    /// 256-bit AVX2 with FMA.
    Avx2,
    /// 512-bit AVX-512F.
    Avx512,
}

impl F32Path {
    /// Every path, slowest first.
    const ALL: [F32Path; 3] = [F32Path::Scalar, F32Path::Avx2, F32Path::Avx512];

    /// Every path this CPU can run, slowest first (Scalar always).
    pub(crate) fn available() -> Vec<F32Path> {
        Self::ALL.into_iter().filter(|p| p.supported()).collect()
    }

    /// The path to use: `super::requested_path()` if it names an available path of this family
    /// ("scalar", "avx2", "avx512"), else the fastest available. Cached, so the environment is read once.
    pub(crate) fn chosen() -> F32Path {
        static CHOSEN: OnceLock<F32Path> = OnceLock::new();
        *CHOSEN.get_or_init(|| Self::select(super::requested_path().as_deref(), &Self::available()))
    }

    /// `requested` if it names one of `available`, else the last (fastest) of them.
    fn select(requested: Option<&str>, available: &[F32Path]) -> F32Path {
        requested
            .and_then(|name| available.iter().copied().find(|p| p.name() == name))
            .or_else(|| available.last().copied())
            .unwrap_or(F32Path::Scalar)
    }

    /// The name `SIEVE_KERNEL` uses for this path.
    pub(crate) fn name(self) -> &'static str {
        match self {
            F32Path::Scalar => "scalar",
            F32Path::Avx2 => "avx2",
            F32Path::Avx512 => "avx512",
        }
    }

    /// Whether this CPU has the instructions the path's kernel uses; the soundness gate for
    /// every `unsafe` call into a `#[target_feature]` entry point.
    fn supported(self) -> bool {
        match self {
            F32Path::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            F32Path::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            F32Path::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            F32Path::Avx2 | F32Path::Avx512 => false,
        }
    }

    /// Register tile and cache blocking of the path (defined on every target, so packing and
    /// planning code does not depend on the architecture).
    fn tile(self) -> Tile {
        match self {
            F32Path::Scalar => SCALAR_TILE,
            F32Path::Avx2 => AVX2_TILE,
            F32Path::Avx512 => AVX512_TILE,
        }
    }
}

/// Register tile and cache blocking of one path.
#[derive(Clone, Copy, Debug)]
struct Tile {
    /// f32 lanes per vector.
    lanes: usize,
    /// Rows of A per micro-kernel call (one broadcast each per depth step).
    mr: usize,
    /// Vectors per row of the micro-tile, so `NR = nv * lanes` columns.
    nv: usize,
    /// Largest depth block: the kernel's `KC × NR` slice of B should stay in L1.
    kc: usize,
    /// Rows per block of A: `MC × KC` of A should stay in L2 while it sweeps all of B's panels.
    mc: usize,
}

impl Tile {
    /// Columns per packed panel.
    const fn nr(self) -> usize {
        self.lanes * self.nv
    }
}

/// 4×16 in 8-wide arrays: 8 accumulator vectors, within the 16 registers of SSE2 or NEON's 32.
const SCALAR_TILE: Tile = Tile {
    lanes: 8,
    mr: 4,
    nv: 2,
    kc: 256,
    mc: 64,
};
/// 6×16: 12 `ymm` accumulators + 2 of B + 1 broadcast, within 16 registers (the classic Haswell/Zen
/// tile). KC 384 keeps k = 384 in one depth block (one store per tile) with B's 24 KiB slice in L1;
/// measured on Zen 3 against KC 192..512 and MC 48..192.
const AVX2_TILE: Tile = Tile {
    lanes: 8,
    mr: 6,
    nv: 2,
    kc: 384,
    mc: 96,
};
/// 12×32: 24 `zmm` accumulators + 2 of B + 1 broadcast, within 32 registers (BLIS's SKX sgemm
/// tile, transposed). KC 256 keeps B's slice (32 KiB at 32 columns) within L1. Not tuned: no
/// AVX-512 machine at hand; the geometry is tested through an emulated 16-lane type.
const AVX512_TILE: Tile = Tile {
    lanes: 16,
    mr: 12,
    nv: 2,
    kc: 256,
    mc: 144,
};

/// Largest `MR × NR` over the tiles, for the stack tile of edge stores.
const MAX_TILE_FLOATS: usize = 512;

/// From this many packed floats on, packing is split over the rayon pool (weights packed once at
/// load stay below it; training's gradients `[tokens, width]` are packed per call).
const PARALLEL_PACK_FLOATS: usize = 1 << 20;

/// Below this many multiply-adds a call stays on the calling thread: fork/join would cost more.
const SERIAL_MACS: usize = 1 << 16;

/// A right-hand matrix B `[k, n]` packed for the kernel of `path`.
pub(crate) struct PackedF32 {
    /// `ceil(n / NR)` panels of `k × NR` floats.
    buf: AlignedBuf,
    k: usize,
    n: usize,
    path: F32Path,
}

impl PackedF32 {
    /// B given row-major as `[k, n]` (element `(kk, nn)` at `b[kk * n + nn]`) — burn's Linear weight
    /// layout `[d_in, d_out]` — packed for [`F32Path::chosen`].
    pub(crate) fn pack(b: &[f32], k: usize, n: usize) -> Self {
        Self::pack_strided(b, k, n, n, 1, F32Path::chosen())
    }

    /// General strides: element `(kk, nn)` at `b[kk * row_stride + nn * col_stride]`, so a head's `K^T`
    /// (`row_stride = 1`, `col_stride` = the key row length) or `V` can be packed straight out of a
    /// fused `[seq, 3 * hidden]` buffer.
    pub(crate) fn pack_strided(
        b: &[f32],
        k: usize,
        n: usize,
        row_stride: usize,
        col_stride: usize,
        path: F32Path,
    ) -> Self {
        let mut packed = Self::empty();
        packed.repack_strided(b, k, n, row_stride, col_stride, path);
        packed
    }

    /// Re-packs into `self`, reusing its allocation when it is large enough (attention packs per call).
    pub(crate) fn repack_strided(
        &mut self,
        b: &[f32],
        k: usize,
        n: usize,
        row_stride: usize,
        col_stride: usize,
        path: F32Path,
    ) {
        assert!(
            path.supported(),
            "PackedF32: the {} kernel needs instructions this CPU lacks",
            path.name()
        );
        self.repack_unchecked_path(b, k, n, row_stride, col_stride, path);
    }

    /// [`Self::repack_strided`] without the CPU check, so tests can pack for a path they only emulate.
    fn repack_unchecked_path(
        &mut self,
        b: &[f32],
        k: usize,
        n: usize,
        row_stride: usize,
        col_stride: usize,
        path: F32Path,
    ) {
        if k > 0 && n > 0 {
            let last = (k - 1)
                .checked_mul(row_stride)
                .and_then(|r| (n - 1).checked_mul(col_stride).and_then(|c| r.checked_add(c)));
            assert!(
                last.is_some_and(|last| last < b.len()),
                "PackedF32: B [{k}, {n}] with strides ({row_stride}, {col_stride}) does not fit in {} floats",
                b.len()
            );
        }
        let nr = path.tile().nr();
        let len = n.div_ceil(nr).checked_mul(k).and_then(|x| x.checked_mul(nr));
        let Some(len) = len else {
            panic!("PackedF32: B [{k}, {n}] is too large to pack")
        };
        self.buf.resize(len);
        (self.k, self.n, self.path) = (k, n, path);
        if len == 0 {
            return;
        }
        let pack_panel = |(j, panel): (usize, &mut [f32])| {
            let col0 = j * nr;
            let cols = (n - col0).min(nr);
            if col_stride == 1 {
                // Row-major source: each depth row of the panel is one contiguous copy.
                for (kk, row) in panel.chunks_exact_mut(nr).enumerate() {
                    row[..cols].copy_from_slice(&b[kk * row_stride + col0..][..cols]);
                    row[cols..].fill(0.0);
                }
            } else {
                // Strided (e.g. transposed) source: walk each source column down its depth.
                for c in 0..nr {
                    let dst = panel[c..].iter_mut().step_by(nr);
                    if c < cols {
                        let src0 = (col0 + c) * col_stride;
                        for (kk, d) in dst.enumerate() {
                            *d = b[src0 + kk * row_stride];
                        }
                    } else {
                        dst.for_each(|d| *d = 0.0);
                    }
                }
            }
        };
        let buf = self.buf.as_mut_slice();
        if len >= PARALLEL_PACK_FLOATS {
            // Gradients packed per call in training (`[tokens, width]`): split over the pool.
            buf.par_chunks_exact_mut(k * nr).enumerate().for_each(pack_panel);
        } else {
            buf.chunks_exact_mut(k * nr).enumerate().for_each(pack_panel);
        }
    }

    /// Depth (rows of B, columns of A).
    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// Output columns.
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// The kernel path the panels are laid out for.
    pub(crate) fn path(&self) -> F32Path {
        self.path
    }

    /// A zero-sized B, to be filled by [`Self::repack_strided`]; allocates nothing.
    pub(crate) const fn empty() -> Self {
        PackedF32 {
            buf: AlignedBuf::new(),
            k: 0,
            n: 0,
            path: F32Path::Scalar,
        }
    }
}

impl Default for PackedF32 {
    fn default() -> Self {
        Self::empty()
    }
}

/// `C[m, n] = A[m, k] · B (+ bias[n] broadcast over rows)`. A row-major with row stride `lda` (≥ k),
/// C row-major with row stride `ldc` (≥ n); C is overwritten, not accumulated. Runs on the rayon
/// global pool, splitting rows (and columns when m is small) over threads.
pub(crate) fn sgemm(a: &[f32], lda: usize, m: usize, b: &PackedF32, bias: Option<&[f32]>, c: &mut [f32], ldc: usize) {
    assert!(
        b.path().supported(),
        "sgemm: B was packed for {}, which this CPU lacks",
        b.path().name()
    );
    sgemm_impl(a, lda, m, b, bias, c, ldc, true, &run_block);
}

/// [`sgemm`] on the calling thread only, for use inside an already-parallel loop.
pub(crate) fn sgemm_serial(
    a: &[f32],
    lda: usize,
    m: usize,
    b: &PackedF32,
    bias: Option<&[f32]>,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(
        b.path().supported(),
        "sgemm: B was packed for {}, which this CPU lacks",
        b.path().name()
    );
    sgemm_impl(a, lda, m, b, bias, c, ldc, false, &run_block);
}

/// Runs one task: rows `rows` of C against B panels `panels`. A parameter so tests can drive the
/// generic code with an emulated path.
type BlockFn = dyn Fn(&Job<'_>, Range<usize>, Range<usize>) + Sync;

/// Validates the shapes (so the raw-pointer code below stays in bounds), then runs the task grid.
#[allow(clippy::too_many_arguments)]
fn sgemm_impl(
    a: &[f32],
    lda: usize,
    m: usize,
    b: &PackedF32,
    bias: Option<&[f32]>,
    c: &mut [f32],
    ldc: usize,
    parallel: bool,
    block: &BlockFn,
) {
    let (k, n) = (b.k(), b.n());
    if let Some(bias) = bias {
        assert_eq!(
            bias.len(),
            n,
            "sgemm: bias has {} values for {n} output columns",
            bias.len()
        );
    }
    assert!(lda >= k, "sgemm: lda {lda} is less than k {k}");
    assert!(ldc >= n, "sgemm: ldc {ldc} is less than n {n}");
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        span(m, lda, k).is_some_and(|need| a.len() >= need),
        "sgemm: A [{m}, {k}] with row stride {lda} does not fit in {} floats",
        a.len()
    );
    assert!(
        span(m, ldc, n).is_some_and(|need| c.len() >= need),
        "sgemm: C [{m}, {n}] with row stride {ldc} does not fit in {} floats",
        c.len()
    );
    if k == 0 {
        for row in c.chunks_mut(ldc).take(m) {
            match bias {
                Some(bias) => row[..n].copy_from_slice(bias),
                None => row[..n].fill(0.0),
            }
        }
        return;
    }
    let tile = b.path.tile();
    let kc = k.div_ceil(k.div_ceil(tile.kc));
    let job = Job {
        a,
        lda,
        m,
        k,
        n,
        kc,
        b: b.buf.as_slice(),
        bias,
        c: c.as_mut_ptr(),
        ldc,
        tile,
        path: b.path,
    };
    let threads = if parallel { rayon::current_num_threads() } else { 1 };
    let plan = Plan::new(&job, threads);
    if plan.tasks() == 1 {
        block(&job, 0..m, 0..n.div_ceil(tile.nr()));
    } else {
        (0..plan.tasks()).into_par_iter().with_max_len(1).for_each(|t| {
            let (rows, panels) = plan.task(&job, t);
            block(&job, rows, panels);
        });
    }
}

/// `(rows - 1) * stride + width`: the floats a strided matrix spans, `None` on overflow.
fn span(rows: usize, stride: usize, width: usize) -> Option<usize> {
    (rows - 1).checked_mul(stride)?.checked_add(width)
}

/// One validated call, shared read-only by its tasks.
struct Job<'a> {
    /// Spans at least `(m - 1) * lda + k` floats.
    a: &'a [f32],
    lda: usize,
    m: usize,
    k: usize,
    n: usize,
    /// Depth block: `k` split into equal blocks of at most `tile.kc`.
    kc: usize,
    /// Packed panels, `ceil(n / NR) * k * NR` floats.
    b: &'a [f32],
    /// Exactly `n` floats.
    bias: Option<&'a [f32]>,
    /// Spans at least `(m - 1) * ldc + n` floats; tasks write disjoint rectangles of it.
    c: *mut f32,
    ldc: usize,
    tile: Tile,
    /// The packed B's path: which kernel `run_block` dispatches to.
    path: F32Path,
}

// SAFETY: `c` is the only field that is not `Sync`; tasks write disjoint (row range × panel range)
// rectangles of it (see `Plan::task`), and `sgemm_impl` holds the `&mut [f32]` it came from until
// every task has finished.
unsafe impl Sync for Job<'_> {}

/// A grid of `row_parts × col_parts` tasks over C, sized so each thread gets several (for balance
/// on a noisy machine) and every task keeps its operands cache-friendly.
struct Plan {
    row_parts: usize,
    col_parts: usize,
}

impl Plan {
    /// Rows are split when there are many micro-panels (B is shared from L3, A streams once); a
    /// short A is split by column panels instead, so each thread reads only its share of B.
    fn new(job: &Job<'_>, threads: usize) -> Plan {
        let (m_panels, n_panels) = (job.m.div_ceil(job.tile.mr), job.n.div_ceil(job.tile.nr()));
        let macs = job.m.saturating_mul(job.n).saturating_mul(job.k);
        if threads <= 1 || macs < SERIAL_MACS {
            return Plan {
                row_parts: 1,
                col_parts: 1,
            };
        }
        let target = 4 * threads;
        if m_panels >= 2 * target {
            // At least `target` tasks, at most MC rows each, a multiple of the thread count.
            let by_mc = m_panels.div_ceil(job.tile.mc / job.tile.mr);
            let parts = by_mc.max(target).div_ceil(threads) * threads;
            Plan {
                row_parts: parts.min(m_panels),
                col_parts: 1,
            }
        } else {
            let col_parts = n_panels.min(target);
            let row_parts = m_panels.min((target / col_parts).max(1));
            Plan { row_parts, col_parts }
        }
    }

    fn tasks(&self) -> usize {
        self.row_parts * self.col_parts
    }

    /// Task `t`'s rows of C and B panels: an even split of whole micro-panels, so the ranges are
    /// disjoint and cover C exactly once.
    fn task(&self, job: &Job<'_>, t: usize) -> (Range<usize>, Range<usize>) {
        let (rp, cp) = (t / self.col_parts, t % self.col_parts);
        let m_panels = job.m.div_ceil(job.tile.mr);
        let n_panels = job.n.div_ceil(job.tile.nr());
        let split = |total: usize, parts: usize, i: usize| total * i / parts..total * (i + 1) / parts;
        let p = split(m_panels, self.row_parts, rp);
        let rows = p.start * job.tile.mr..(p.end * job.tile.mr).min(job.m);
        (rows, split(n_panels, self.col_parts, cp))
    }
}

/// Dispatches one task to the kernel of the job's path.
fn run_block(job: &Job<'_>, rows: Range<usize>, panels: Range<usize>) {
    match job.path {
        F32Path::Scalar => {
            // SAFETY: the scalar ops use no special instructions; `job` was validated by `sgemm_impl`.
            unsafe { block::<ScalarOps, { SCALAR_TILE.mr }, { SCALAR_TILE.nv }>(job, rows, panels) }
        }
        #[cfg(target_arch = "x86_64")]
        F32Path::Avx2 => {
            // SAFETY: `sgemm`/`sgemm_serial` checked `supported()` for the packed path; `job` is validated.
            unsafe { block_avx2(job, rows, panels) }
        }
        #[cfg(target_arch = "x86_64")]
        F32Path::Avx512 => {
            // SAFETY: as above, for AVX-512F.
            unsafe { block_avx512(job, rows, panels) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        F32Path::Avx2 | F32Path::Avx512 => unreachable!("x86 paths are never supported on this target"),
    }
}

/// AVX2+FMA entry: the generic driver compiled with the features its intrinsics need.
///
/// # Safety
/// The CPU supports AVX2 and FMA; `job` was validated by `sgemm_impl`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2(job: &Job<'_>, rows: Range<usize>, panels: Range<usize>) {
    // SAFETY: this function enables exactly the features `Avx2Ops` uses; the rest is the caller's contract.
    unsafe { block::<Avx2Ops, { AVX2_TILE.mr }, { AVX2_TILE.nv }>(job, rows, panels) }
}

/// AVX-512F entry: the generic driver compiled with the features its intrinsics need.
///
/// # Safety
/// The CPU supports AVX-512F; `job` was validated by `sgemm_impl`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512(job: &Job<'_>, rows: Range<usize>, panels: Range<usize>) {
    // SAFETY: this function enables exactly the features `Avx512Ops` uses; the rest is the caller's contract.
    unsafe { block::<Avx512Ops, { AVX512_TILE.mr }, { AVX512_TILE.nv }>(job, rows, panels) }
}

/// The driver: C rows `rows` × B panels `panels`, blocked MC × KC, one micro-kernel per MR × NR tile.
/// The `MR` / `NV` const generics repeat `S::TILE` because array lengths cannot use associated consts.
///
/// # Safety
/// `S`'s instructions are available; `job` was validated by `sgemm_impl`; no other thread writes
/// this task's rectangle of C.
#[inline(always)]
unsafe fn block<S: Simd, const MR: usize, const NV: usize>(job: &Job<'_>, rows: Range<usize>, panels: Range<usize>) {
    const { assert!(S::TILE.mr == MR && S::TILE.nv == NV && MR < 16) };
    let nr = S::TILE.nr();
    assert!(
        rows.end <= job.m && panels.end <= job.n.div_ceil(nr),
        "sgemm: task outside C"
    );
    let mut ic = rows.start;
    while ic < rows.end {
        let end = (ic + S::TILE.mc).min(rows.end);
        let mut pc = 0;
        while pc < job.k {
            let kc = (job.k - pc).min(job.kc);
            for j in panels.clone() {
                let b_panel = &job.b[(j * job.k + pc) * nr..][..kc * nr];
                let mut r0 = ic;
                while r0 + MR <= end {
                    // SAFETY: rows r0 .. r0 + MR ≤ end of this task's rows, panel j of its panels;
                    // `S`'s features are the caller's contract. Likewise for the edge calls below.
                    unsafe { tile::<S, MR, NV>(job, r0, pc, j, b_panel) };
                    r0 += MR;
                }
                // Fewer than MR rows left: exact-height kernels, one per binary digit of the count
                // (the `MR >` tests are constant and only skip sizes that cannot occur).
                let left = end - r0;
                if MR > 8 && left & 8 != 0 {
                    // SAFETY: 8 ≤ left rows remain before `end`.
                    unsafe { tile::<S, 8, NV>(job, r0, pc, j, b_panel) };
                    r0 += 8;
                }
                if MR > 4 && left & 4 != 0 {
                    // SAFETY: 4 rows remain before `end` (the set bits of `left` not yet consumed).
                    unsafe { tile::<S, 4, NV>(job, r0, pc, j, b_panel) };
                    r0 += 4;
                }
                if MR > 2 && left & 2 != 0 {
                    // SAFETY: as above, 2 rows remain.
                    unsafe { tile::<S, 2, NV>(job, r0, pc, j, b_panel) };
                    r0 += 2;
                }
                if left & 1 != 0 {
                    // SAFETY: as above, 1 row remains.
                    unsafe { tile::<S, 1, NV>(job, r0, pc, j, b_panel) };
                }
            }
            pc += kc;
        }
        ic = end;
    }
}

/// One `R × NR` tile of C: rows `r0 .. r0 + R`, panel `j`, against the depth block starting at `pc`
/// (`b_panel` is that block of the panel). A is read in place, so no packing of A is needed.
///
/// # Safety
/// `S`'s instructions are available; `job` was validated; no other thread writes these rows of panel `j`.
#[inline(always)]
unsafe fn tile<S: Simd, const R: usize, const NV: usize>(
    job: &Job<'_>,
    r0: usize,
    pc: usize,
    j: usize,
    b_panel: &[f32],
) {
    let nr = S::TILE.nr();
    let kc = b_panel.len() / nr;
    let col = j * nr;
    let cols = (job.n - col).min(nr);
    assert!(r0 + R <= job.m, "sgemm: tile rows outside C");
    let a = &job.a[r0 * job.lda + pc..][..(R - 1) * job.lda + kc];
    // Start fetching the C rows now: their stores come after the whole depth loop, and C is usually
    // cold (measured ~5-10% on m = 8192 shapes).
    // A row of the tile spans at most 3 lines (NR ≤ 32 floats): its first, 17th and last float.
    const { assert!(NV * S::TILE.lanes <= 32) };
    for r in 0..R {
        // SAFETY: (r0 + r, col + off) with r < R, off < cols is inside C (see the store below).
        unsafe {
            let row = job.c.add((r0 + r) * job.ldc + col);
            S::prefetch(row);
            S::prefetch(row.add(cols - 1));
            if NV * S::TILE.lanes > 16 && cols > 17 {
                S::prefetch(row.add(16));
            }
        }
    }
    // SAFETY: the kernel asserts its slices cover `R` rows of `kc` and `kc × NR`; features are the caller's.
    let acc = unsafe { kernel::<S, R, NV>(kc, a, job.lda, b_panel) };
    let store = match (pc, job.bias) {
        (0, Some(bias)) => Store::Bias(&bias[col..col + cols]),
        (0, None) => Store::Overwrite,
        _ => Store::Accumulate,
    };
    // SAFETY: C elements (r0 + r, col + c) for r < R, c < cols have r0 + r < m and col + c < n, so lie in
    // the span `sgemm_impl` validated; only this task writes them.
    unsafe { store_tile::<S, R, NV>(&acc, job.c.add(r0 * job.ldc + col), job.ldc, cols, store) };
}

/// What a micro-tile store does with C.
#[derive(Clone, Copy)]
enum Store<'a> {
    /// First depth block, no bias: `C = acc`.
    Overwrite,
    /// First depth block: `C = acc + bias`, the bias of the tile's columns.
    Bias(&'a [f32]),
    /// Later depth blocks: `C += acc`.
    Accumulate,
}

/// The micro-kernel: `acc[r][v] = Σ_p a[r * lda + p] · B(p, v * LANES ..)` over `kc` depth steps,
/// all in registers.
///
/// # Safety
/// `S`'s instructions are available. (The slice lengths are asserted here.)
#[inline(always)]
unsafe fn kernel<S: Simd, const R: usize, const NV: usize>(
    kc: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
) -> [[S::V; NV]; R] {
    const { assert!(size_of::<S::V>() == S::TILE.lanes * size_of::<f32>() && R > 0) };
    let nr = S::TILE.nr();
    assert!(
        kc > 0 && a.len() >= (R - 1) * lda + kc && b.len() >= kc * nr,
        "sgemm: micro-kernel operands too short"
    );
    // SAFETY: by the assertion, A reads (at most (R - 1) * lda + kc - 1) stay in `a` and B reads (at
    // most kc * nr - 1) in `b`.
    unsafe {
        let mut acc = [[S::zero(); NV]; R];
        let (mut ap, mut bp) = (a.as_ptr(), b.as_ptr());
        // One depth step per iteration: unrolled further, LLVM hoists the B loads of the later
        // steps and spills accumulators to the stack inside the loop (24 of AVX-512's 32 `zmm`
        // hold accumulators). Measured on Zen 4 (2026-12-02, 2 threads): unrolling by 4 ran at
        // about half the rate on every shape (77 against 145 GFLOP/s at m = 8192, k = n = 384;
        // 30 against 50–95 at attention's k = 32); AVX2 was 1.3–1.5× slower at m = 8192.
        for _ in 0..kc {
            step::<S, R, NV>(&mut acc, ap, lda, bp);
            ap = ap.add(1);
            bp = bp.add(nr);
        }
        acc
    }
}

/// One depth step of the micro-kernel: `NV` loads of B, then per row one broadcast of A and `NV` FMAs.
///
/// # Safety
/// `S`'s instructions are available; `ap + r * lda` (r < R) and `bp .. bp + NR` are readable.
#[inline(always)]
unsafe fn step<S: Simd, const R: usize, const NV: usize>(
    acc: &mut [[S::V; NV]; R],
    ap: *const f32,
    lda: usize,
    bp: *const f32,
) {
    // SAFETY: the pointers are readable per this function's contract.
    unsafe {
        let mut bv = [S::zero(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = S::load(bp.add(v * S::TILE.lanes));
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let av = S::splat(ap.add(r * lda));
            for (x, &y) in row.iter_mut().zip(&bv) {
                *x = S::fmadd(av, y, *x);
            }
        }
    }
}

/// Writes an accumulator tile to `R × cols` of C: straight from registers when the tile is full
/// width, through a stack copy at the right edge.
///
/// # Safety
/// `S`'s instructions are available; `c + r * ldc + j` is writable for `r < R`, `j < cols ≤ NR`;
/// a `Store::Bias` slice has `cols` floats.
#[inline(always)]
unsafe fn store_tile<S: Simd, const R: usize, const NV: usize>(
    acc: &[[S::V; NV]; R],
    c: *mut f32,
    ldc: usize,
    cols: usize,
    store: Store<'_>,
) {
    const { assert!(R * NV * S::TILE.lanes <= MAX_TILE_FLOATS) };
    let lanes = S::TILE.lanes;
    let nr = S::TILE.nr();
    if let Store::Bias(bias) = store {
        assert_eq!(bias.len(), cols, "sgemm: bias slice does not match the tile");
    }
    if cols == nr {
        for (r, row) in acc.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                // SAFETY: a full-width tile: r < R and v * lanes + lanes ≤ NR = cols, in the caller's
                // region; a bias slice has NR floats.
                unsafe {
                    let p = c.add(r * ldc + v * lanes);
                    let y = match store {
                        Store::Overwrite => x,
                        Store::Bias(bias) => S::add(x, S::load(bias.as_ptr().add(v * lanes))),
                        Store::Accumulate => S::add(x, S::load(p)),
                    };
                    S::store(p, y);
                }
            }
        }
    } else {
        let mut tile = [0.0f32; MAX_TILE_FLOATS];
        for (r, row) in acc.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                // SAFETY: r * nr + v * lanes + lanes ≤ R * NR ≤ MAX_TILE_FLOATS (const-asserted).
                unsafe { S::store(tile.as_mut_ptr().add(r * nr + v * lanes), x) };
            }
        }
        for (r, t) in tile.chunks_exact(nr).take(R).enumerate() {
            for (j, &x) in t[..cols].iter().enumerate() {
                // SAFETY: r < R and j < cols: inside the caller's region.
                unsafe {
                    let p = c.add(r * ldc + j);
                    *p = match store {
                        Store::Overwrite => x,
                        Store::Bias(bias) => x + bias[j],
                        Store::Accumulate => *p + x,
                    };
                }
            }
        }
    }
}

/// The vector operations the generic kernel needs, one impl per path.
///
/// # Safety
/// Implementors may use instructions beyond the target's baseline: callers must only call the
/// methods where [`Simd::TILE`]'s path is `supported()` (inside its `#[target_feature]` entry), and
/// pass pointers valid for `TILE.lanes` floats (no alignment needed). `V` must be `TILE.lanes` f32s.
unsafe trait Simd {
    /// One vector of `TILE.lanes` floats.
    type V: Copy;
    /// The register tile and cache blocking this vector width is used with.
    const TILE: Tile;
    /// All lanes 0.
    unsafe fn zero() -> Self::V;
    /// All lanes `*p` (a broadcast load, which x86 folds into one instruction).
    unsafe fn splat(p: *const f32) -> Self::V;
    /// Unaligned load of `lanes` floats.
    unsafe fn load(p: *const f32) -> Self::V;
    /// Unaligned store of `lanes` floats.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a * b + c` per lane.
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a + b` per lane.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// Hint that the cache line holding `*p` will soon be written; `p` must point into an allocation.
    unsafe fn prefetch(p: *const f32);
}

/// Portable 8-lane arrays. Plain `a * b + c` rather than `mul_add`, which without hardware FMA
/// becomes a libm call per lane.
struct ScalarOps;

// SAFETY: plain Rust on arrays; the only raw accesses are the pointer reads/writes the trait
// contract makes the caller responsible for.
unsafe impl Simd for ScalarOps {
    type V = [f32; 8];
    const TILE: Tile = SCALAR_TILE;
    #[inline(always)]
    unsafe fn zero() -> Self::V {
        [0.0; 8]
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> Self::V {
        // SAFETY: the caller passes a readable pointer (trait contract).
        [unsafe { p.read() }; 8]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        // SAFETY: the caller passes a pointer readable for 8 floats (trait contract).
        unsafe { p.cast::<[f32; 8]>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        // SAFETY: the caller passes a pointer writable for 8 floats (trait contract).
        unsafe { p.cast::<[f32; 8]>().write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] + b[i])
    }
    /// No portable prefetch; only a hint.
    #[inline(always)]
    unsafe fn prefetch(_: *const f32) {}
}

/// AVX2 + FMA on `__m256`.
#[cfg(target_arch = "x86_64")]
struct Avx2Ops;

// SAFETY: every method is one AVX/FMA intrinsic; the trait contract requires the caller to have
// checked AVX2+FMA and to pass valid pointers.
#[cfg(target_arch = "x86_64")]
unsafe impl Simd for Avx2Ops {
    type V = __m256;
    const TILE: Tile = AVX2_TILE;
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        // SAFETY: AVX is available (trait contract).
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m256 {
        // SAFETY: AVX is available and `p` is readable (trait contract).
        unsafe { _mm256_set1_ps(p.read()) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: AVX is available and `p` is readable for 8 floats (trait contract).
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: AVX is available and `p` is writable for 8 floats (trait contract).
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: FMA is available (trait contract).
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is available (trait contract).
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        // SAFETY: SSE is baseline on x86_64; a prefetch never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }
}

/// AVX-512F on `__m512`.
#[cfg(target_arch = "x86_64")]
struct Avx512Ops;

// SAFETY: every method is one AVX-512F intrinsic; the trait contract requires the caller to have
// checked AVX-512F and to pass valid pointers.
#[cfg(target_arch = "x86_64")]
unsafe impl Simd for Avx512Ops {
    type V = __m512;
    const TILE: Tile = AVX512_TILE;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        // SAFETY: AVX-512F is available (trait contract).
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m512 {
        // SAFETY: AVX-512F is available and `p` is readable (trait contract).
        unsafe { _mm512_set1_ps(p.read()) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: AVX-512F is available and `p` is readable for 16 floats (trait contract).
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: AVX-512F is available and `p` is writable for 16 floats (trait contract).
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (trait contract).
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (trait contract).
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        // SAFETY: SSE is baseline on x86_64; a prefetch never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }
}

/// A `Vec<f32>` whose visible part starts on a 64-byte boundary, so packed rows are whole cache lines.
struct AlignedBuf {
    raw: Vec<f32>,
    /// Floats skipped at the front of `raw` to reach the boundary.
    off: usize,
    len: usize,
}

impl AlignedBuf {
    /// Floats per 64-byte line: the most `off` can be.
    const LINE: usize = 16;

    const fn new() -> Self {
        AlignedBuf {
            raw: Vec::new(),
            off: 0,
            len: 0,
        }
    }

    /// Makes `len` floats visible, reallocating only to grow; contents are unspecified (callers overwrite).
    fn resize(&mut self, len: usize) {
        let need = len + Self::LINE;
        if self.raw.len() < need {
            self.raw = vec![0.0; need];
        }
        // `align_offset` may in principle decline (usize::MAX); then stay unaligned, which is only slower.
        let off = self.raw.as_ptr().align_offset(64);
        self.off = if off < Self::LINE { off } else { 0 };
        self.len = len;
    }

    fn as_slice(&self) -> &[f32] {
        &self.raw[self.off..self.off + self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.raw[self.off..self.off + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64: deterministic inputs without a rand dependency.
    struct Rng(u64);

    impl Rng {
        /// Uniform in [-1, 1).
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }

        fn vec(&mut self, len: usize) -> Vec<f32> {
            (0..len).map(|_| self.next()).collect()
        }
    }

    /// Written into C before a call: must be overwritten inside the matrix and kept in the row padding.
    const SENTINEL: f32 = 4096.5;

    /// One problem: A with padded rows (garbage in the padding), B row-major, optional bias.
    struct Case {
        m: usize,
        k: usize,
        n: usize,
        lda: usize,
        ldc: usize,
        a: Vec<f32>,
        b: Vec<f32>,
        bias: Option<Vec<f32>>,
    }

    impl Case {
        fn new(m: usize, k: usize, n: usize, with_bias: bool, seed: u64) -> Case {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let (lda, ldc) = (k + 3, n + 5);
            // Exactly the span sgemm needs, so a read or write past it would hit a bounds check.
            let a = rng.vec(if m == 0 { 0 } else { (m - 1) * lda + k });
            let b = rng.vec(k * n);
            let bias = with_bias.then(|| rng.vec(n));
            Case {
                m,
                k,
                n,
                lda,
                ldc,
                a,
                b,
                bias,
            }
        }

        fn c_len(&self) -> usize {
            if self.m == 0 {
                0
            } else {
                (self.m - 1) * self.ldc + self.n
            }
        }

        /// C by f64 accumulation, and each element's error scale Σ|a·b| + |bias|.
        fn reference(&self) -> (Vec<f64>, Vec<f64>) {
            let (mut want, mut scale) = (vec![0.0; self.m * self.n], vec![0.0; self.m * self.n]);
            for i in 0..self.m {
                for j in 0..self.n {
                    let bias = self.bias.as_ref().map_or(0.0, |b| f64::from(b[j]));
                    let (mut s, mut t) = (bias, bias.abs());
                    for p in 0..self.k {
                        let x = f64::from(self.a[i * self.lda + p]) * f64::from(self.b[p * self.n + j]);
                        s += x;
                        t += x.abs();
                    }
                    want[i * self.n + j] = s;
                    scale[i * self.n + j] = t;
                }
            }
            (want, scale)
        }

        /// Runs `sgemm` or `sgemm_serial` against `packed` into a sentinel-filled C.
        fn run(&self, packed: &PackedF32, parallel: bool) -> Vec<f32> {
            let mut c = vec![SENTINEL; self.c_len()];
            let f = if parallel { sgemm } else { sgemm_serial };
            f(
                &self.a,
                self.lda,
                self.m,
                packed,
                self.bias.as_deref(),
                &mut c,
                self.ldc,
            );
            c
        }

        /// Asserts every element is within tolerance of the reference and the row padding is untouched.
        fn check(&self, c: &[f32], what: &str) {
            let (want, scale) = self.reference();
            for i in 0..self.m {
                for j in 0..self.ldc {
                    let Some(&got) = c.get(i * self.ldc + j) else { break };
                    if j >= self.n {
                        assert_eq!(got.to_bits(), SENTINEL.to_bits(), "{what}: wrote padding C[{i}, {j}]");
                        continue;
                    }
                    let (w, s) = (want[i * self.n + j], scale[i * self.n + j]);
                    let err = (f64::from(got) - w).abs();
                    assert!(
                        err <= 1e-5 * s + 1e-6,
                        "{what}: C[{i}, {j}] = {got}, want {w} (error {err:e}, scale {s:e})"
                    );
                }
            }
        }
    }

    const MS: [usize; 5] = [1, 5, 7, 33, 130];
    const KS: [usize; 6] = [1, 3, 32, 63, 384, 1537];

    /// Every (m, k) with the narrow widths; the wide ones on a subset that still hits every edge
    /// (m below, at and above a tile; k below, within and across depth blocks).
    fn shapes() -> Vec<(usize, usize, usize)> {
        let mut shapes = Vec::new();
        for m in MS {
            for k in KS {
                for n in [1, 15, 17, 100] {
                    shapes.push((m, k, n));
                }
            }
        }
        for m in [1, 7, 33] {
            for k in [3, 63, 384] {
                for n in [384, 1152] {
                    shapes.push((m, k, n));
                }
            }
        }
        shapes.extend([(130, 384, 1152), (33, 1537, 384), (130, 63, 384), (5, 1537, 1152)]);
        shapes
    }

    #[test]
    fn every_path_matches_the_reference_on_awkward_shapes() {
        for path in F32Path::available() {
            for (t, &(m, k, n)) in shapes().iter().enumerate() {
                let case = Case::new(m, k, n, t % 2 == 0, t as u64);
                let packed = PackedF32::pack_strided(&case.b, k, n, n, 1, path);
                assert_eq!((packed.k(), packed.n(), packed.path()), (k, n, path));
                let parallel = t % 3 != 0;
                let what = format!(
                    "{} m={m} k={k} n={n} bias={} parallel={parallel}",
                    path.name(),
                    t % 2 == 0
                );
                case.check(&case.run(&packed, parallel), &what);
            }
        }
    }

    /// Splitting over threads changes which task computes a tile, never its summation order.
    #[test]
    fn parallel_splits_are_bitwise_equal_to_serial() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .expect("thread pool");
        // Row split, column split (m small) and a 2-D grid.
        for (m, k, n) in [(130, 384, 1152), (5, 1537, 1152), (33, 63, 100), (1000, 32, 40)] {
            let case = Case::new(m, k, n, true, (m * k + n) as u64);
            for path in F32Path::available() {
                let packed = PackedF32::pack_strided(&case.b, k, n, n, 1, path);
                let serial = case.run(&packed, false);
                let parallel = pool.install(|| case.run(&packed, true));
                let what = format!("{} m={m} k={k} n={n}", path.name());
                assert!(
                    serial.iter().zip(&parallel).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{what}"
                );
                case.check(&parallel, &what);
            }
        }
    }

    /// Attention packs a head's K^T straight out of a fused [seq, 3 * hidden] buffer: row stride 1,
    /// column stride the fused row. It must pack exactly as the same matrix given row-major.
    #[test]
    fn transposed_source_packs_like_row_major() {
        let (seq, head, hidden3, offset) = (77, 32, 3 * 96, 96 + 32);
        let mut rng = Rng(7);
        let fused = rng.vec(seq * hidden3);
        // K^T [head, seq]: element (d, s) = fused[s * hidden3 + offset + d].
        let (k, n) = (head, seq);
        let kt: Vec<f32> = (0..k * n).map(|i| fused[(i % n) * hidden3 + offset + i / n]).collect();
        for path in F32Path::available() {
            let strided = PackedF32::pack_strided(&fused[offset..], k, n, 1, hidden3, path);
            let plain = PackedF32::pack_strided(&kt, k, n, n, 1, path);
            assert_eq!(strided.buf.as_slice(), plain.buf.as_slice(), "{}", path.name());
            let mut case = Case::new(seq, k, n, false, 11);
            case.b = kt.clone();
            case.check(&case.run(&strided, false), &format!("{} K^T", path.name()));
        }
    }

    #[test]
    fn repack_reuses_the_allocation_and_forgets_the_old_matrix() {
        for path in F32Path::available() {
            let big = Case::new(9, 384, 1152, true, 1);
            let mut packed = PackedF32::empty();
            assert_eq!((packed.k(), packed.n()), (0, 0));
            packed.repack_strided(&big.b, 384, 1152, 1152, 1, path);
            big.check(&big.run(&packed, true), "big");
            let ptr = packed.buf.raw.as_ptr();
            for (m, k, n) in [(40, 32, 77), (7, 77, 32), (3, 1, 1)] {
                let small = Case::new(m, k, n, false, (m + k + n) as u64);
                packed.repack_strided(&small.b, k, n, n, 1, path);
                assert_eq!(packed.buf.raw.as_ptr(), ptr, "{}: repack reallocated", path.name());
                small.check(
                    &small.run(&packed, false),
                    &format!("{} repacked {m}x{k}x{n}", path.name()),
                );
            }
        }
    }

    #[test]
    fn all_paths_agree() {
        let case = Case::new(37, 500, 203, true, 5);
        let (_, scale) = case.reference();
        let outputs: Vec<(F32Path, Vec<f32>)> = F32Path::available()
            .into_iter()
            .map(|path| {
                (
                    path,
                    case.run(&PackedF32::pack_strided(&case.b, 500, 203, 203, 1, path), true),
                )
            })
            .collect();
        let (first, base) = &outputs[0];
        for (path, out) in &outputs[1..] {
            for i in 0..case.m {
                for j in 0..case.n {
                    let (x, y) = (base[i * case.ldc + j], out[i * case.ldc + j]);
                    let tol = 1e-5 * scale[i * case.n + j] + 1e-6;
                    assert!(
                        f64::from((x - y).abs()) <= tol,
                        "{first:?} vs {path:?} at [{i}, {j}]: {x} vs {y}"
                    );
                }
            }
        }
    }

    /// A portable stand-in with AVX-512's width and tile, so the generic driver's 16-lane, 12×32
    /// geometry is exercised on CPUs without AVX-512 (the real impl only wraps intrinsics).
    struct Wide16;

    // SAFETY: plain Rust on arrays; pointer validity is the caller's, per the trait contract.
    unsafe impl Simd for Wide16 {
        type V = [f32; 16];
        const TILE: Tile = AVX512_TILE;
        unsafe fn zero() -> Self::V {
            [0.0; 16]
        }
        unsafe fn splat(p: *const f32) -> Self::V {
            // SAFETY: readable per the trait contract.
            [unsafe { p.read() }; 16]
        }
        unsafe fn load(p: *const f32) -> Self::V {
            // SAFETY: readable for 16 floats per the trait contract.
            unsafe { p.cast::<[f32; 16]>().read_unaligned() }
        }
        unsafe fn store(p: *mut f32, v: Self::V) {
            // SAFETY: writable for 16 floats per the trait contract.
            unsafe { p.cast::<[f32; 16]>().write_unaligned(v) }
        }
        unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
            std::array::from_fn(|i| a[i] * b[i] + c[i])
        }
        unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
            std::array::from_fn(|i| a[i] + b[i])
        }
        unsafe fn prefetch(_: *const f32) {}
    }

    #[test]
    fn avx512_geometry_matches_the_reference_when_emulated() {
        let emulated = |job: &Job<'_>, rows: Range<usize>, panels: Range<usize>| {
            // SAFETY: `Wide16` is plain Rust; `sgemm_impl` validated the job and hands out disjoint tasks.
            unsafe { block::<Wide16, { AVX512_TILE.mr }, { AVX512_TILE.nv }>(job, rows, panels) }
        };
        for (t, (m, k, n)) in [
            (1, 1, 1),
            (11, 3, 31),
            (13, 63, 33),
            (130, 384, 100),
            (25, 1537, 64),
            (200, 32, 1152),
        ]
        .into_iter()
        .enumerate()
        {
            let case = Case::new(m, k, n, t % 2 == 1, 100 + t as u64);
            let mut packed = PackedF32::empty();
            packed.repack_unchecked_path(&case.b, k, n, n, 1, F32Path::Avx512);
            let mut c = vec![SENTINEL; case.c_len()];
            sgemm_impl(
                &case.a,
                case.lda,
                m,
                &packed,
                case.bias.as_deref(),
                &mut c,
                case.ldc,
                true,
                &emulated,
            );
            case.check(&c, &format!("emulated avx512 m={m} k={k} n={n}"));
        }
    }

    #[test]
    fn degenerate_shapes() {
        for path in F32Path::available() {
            // k = 0: C is the bias (or zeros), still not accumulated.
            let packed = PackedF32::pack_strided(&[], 0, 3, 3, 1, path);
            let mut c = vec![SENTINEL; 2 * 4];
            sgemm(&[], 0, 2, &packed, Some(&[1.0, 2.0, 3.0]), &mut c, 4);
            assert_eq!(c, [1.0, 2.0, 3.0, SENTINEL, 1.0, 2.0, 3.0, SENTINEL]);
            sgemm_serial(&[], 0, 2, &packed, None, &mut c, 4);
            assert_eq!(c, [0.0, 0.0, 0.0, SENTINEL, 0.0, 0.0, 0.0, SENTINEL]);
            // m = 0 and n = 0 touch nothing.
            let packed = PackedF32::pack_strided(&[1.0; 6], 2, 3, 3, 1, path);
            sgemm(&[], 2, 0, &packed, None, &mut [], 3);
            let empty = PackedF32::pack_strided(&[], 5, 0, 0, 1, path);
            let mut c = [SENTINEL; 2];
            sgemm(&[1.0; 10], 5, 2, &empty, None, &mut c, 1);
            assert_eq!(c, [SENTINEL; 2]);
        }
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn a_too_short_is_rejected() {
        let packed = PackedF32::pack(&[1.0; 12], 4, 3);
        let mut c = [0.0; 6];
        sgemm(&[1.0; 7], 4, 2, &packed, None, &mut c, 3);
    }

    #[test]
    #[should_panic(expected = "bias has 2 values")]
    fn wrong_bias_length_is_rejected() {
        let packed = PackedF32::pack(&[1.0; 12], 4, 3);
        let mut c = [0.0; 6];
        sgemm(&[1.0; 8], 4, 2, &packed, Some(&[0.0; 2]), &mut c, 3);
    }

    #[test]
    fn chosen_path_is_available_and_requests_are_honoured() {
        let available = F32Path::available();
        assert_eq!(available[0], F32Path::Scalar);
        assert!(available.contains(&F32Path::chosen()));
        let all = F32Path::ALL;
        assert_eq!(F32Path::select(None, &all), F32Path::Avx512);
        assert_eq!(F32Path::select(Some("avx2"), &all), F32Path::Avx2);
        assert_eq!(F32Path::select(Some("scalar"), &all), F32Path::Scalar);
        // Unavailable or foreign (another kernel family's) names fall back to the fastest available.
        assert_eq!(F32Path::select(Some("avx512"), &all[..2]), F32Path::Avx2);
        assert_eq!(F32Path::select(Some("avx512vnni"), &all[..2]), F32Path::Avx2);
        assert_eq!(F32Path::select(Some("avx2"), &all[..1]), F32Path::Scalar);
    }
}
