//! Energy distance of each perturbation's cells to the control cells (cell-eval `pearson_edistance`):
//! `E = 2 mean d(X, C) - mean d(X, X) - mean d(C, C)` with Euclidean `d` over all genes, where the
//! within-group means include the zero diagonal (sklearn `pairwise_distances(x).mean()`).
//!
//! Cost is dominated by the cross distances (every cell × every control cell). They are computed as
//! `sqrt(max(0, |x|^2 + |c|^2 - 2 x.c))` (what sklearn does) with the dot products as a sparse ×
//! dense product: the control cells are laid out once as dense slabs of `W32` cells,
//! `[block][gene][W32]`, and each work item (a tile of up to `TILE` cells of one group) is re-laid
//! out gene-chunk-major. For one slab block and one chunk of `GC` genes (32 KiB, about L1) every
//! cell of the tile runs over its non-zeros in the chunk with `W32` accumulators held in registers
//! (AVX-512 or AVX2/FMA when the CPU has it). The control cells' own term `E d(C, C)` comes out of the same
//! pass (the control group's tiles), once per call. Distances are symmetric, so the within-group
//! terms (control included) compute each unordered pair once and count it twice.
//!
//! Precision: the cross products run in float32 (8 lanes per AVX2 register instead of 4, half the
//! slab memory) with the partial sums moved into float64 every `FLUSH` chunks, so a partial holds
//! about `FLUSH * GC * density` products (relative error ~1e-7); squared norms and the distance
//! sums are float64. cell-eval itself stores every distance as float32 (sklearn upcasts float32
//! input in chunks, then writes the distances into a float32 matrix) and averages them in float32.
//! The within-group term runs the same float32 pass. Where a pair is close relative to its norms
//! (`d^2 < NEAR * (|x|^2 + |y|^2)`, as identical cells are: a mean prediction repeats one cell, a
//! control-copy prediction repeats control cells), the float32 cancellation in `|x|^2 + |y|^2 - 2 x.y`
//! would leave ~1e-3 of the norm instead of ~0, so such pairs are computed again directly, as
//! `sqrt(sum (x - y)^2)` in float64 over the two sparse rows (0 for identical cells). Elsewhere the
//! float32 error is that of the cross term.

use rayon::prelude::*;
use scale_io::{CsrMatrix, Matrix};

use crate::groups::Groups;
use crate::Progress;

/// Control cells per float32 slab block: 8 AVX-512 registers of 16 float32 (AVX2: two passes of 8
/// registers of 8). Each non-zero feeds one FMA per register, and an FMA waits ~4 cycles for the one
/// before it on the same register, so 8 independent registers are what keeps both FMA units busy; 4
/// registers (64 cells in AVX-512) left the kernel waiting on that latency.
const W32: usize = 128;
/// Genes per chunk: one chunk of a slab block is `GC * 512` bytes = 32 KiB, in L1
/// (48 KiB) beside the tile's streams.
const GC: usize = 64;
/// Chunks accumulated in float32 before the partial sums move to float64 (every 256 genes).
const FLUSH: usize = 4;
/// Cells per work item: bounds the re-laid-out tile (6 bytes per non-zero) to a few MiB.
const TILE: usize = 128;

/// A tile of cells re-laid out chunk-major: the non-zeros of tile row `i` in gene chunk `c` are
/// `ptr[c * n + i]..ptr[c * n + i + 1]`, as (gene offset within the chunk, value).
struct Tile {
    n: usize,
    ptr: Vec<u32>,
    off: Vec<u16>,
    val: Vec<f32>,
}

impl Tile {
    fn new(m: &CsrMatrix, rows: &[usize]) -> Tile {
        let n = rows.len();
        let n_chunks = m.n_cols.div_ceil(GC);
        // A row's non-zeros come in runs of one chunk each (rows are sorted; an unsorted row only
        // has more runs), so both passes go run by run rather than element by element.
        let runs = |idx: &[u32], f: &mut dyn FnMut(usize, std::ops::Range<usize>)| {
            let mut a = 0;
            while a < idx.len() {
                let c = idx[a] as usize / GC;
                let (lo, hi) = (c * GC, (c + 1) * GC);
                let b = a + idx[a..]
                    .iter()
                    .position(|&g| !(lo..hi).contains(&(g as usize)))
                    .unwrap_or(idx.len() - a);
                f(c, a..b);
                a = b;
            }
        };
        let mut ptr = vec![0u32; n_chunks * n + 1];
        for (i, &r) in rows.iter().enumerate() {
            runs(m.row(r).0, &mut |c, run| ptr[c * n + i + 1] += run.len() as u32);
        }
        for k in 0..n_chunks * n {
            ptr[k + 1] += ptr[k];
        }
        let nnz = ptr[n_chunks * n] as usize;
        let mut next = ptr[..n_chunks * n].to_vec();
        let mut off = vec![0u16; nnz];
        let mut val = vec![0f32; nnz];
        for (i, &r) in rows.iter().enumerate() {
            let (idx, v) = m.row(r);
            runs(idx, &mut |c, run| {
                let k = c * n + i;
                let s = next[k] as usize;
                let len = run.len();
                for (o, &g) in off[s..s + len].iter_mut().zip(&idx[run.clone()]) {
                    *o = (g as usize - c * GC) as u16;
                }
                val[s..s + len].copy_from_slice(&v[run]);
                next[k] += len as u32;
            });
        }
        Tile { n, ptr, off, val }
    }
}

/// One cache line of float32.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// Zeroed float32 storage starting on a cache line. A 64-byte AVX-512 load that crosses a line
/// costs two, and a plain `Vec<f32>` of this size starts 16 bytes past one (malloc's header): with
/// every slab row and accumulator load split, the kernel ran at 37 G lane-FMA/s where aligned rows
/// give 57 G (16 non-zeros per call, data in L1, session 9).
struct AlignedF32 {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedF32 {
    fn zeroed(len: usize) -> AlignedF32 {
        let n = len.div_ceil(16);
        let lines = if n == 0 {
            Vec::new()
        } else {
            let layout = std::alloc::Layout::array::<Line>(n).expect("slab size overflows");
            // SAFETY: `layout` is that of `n` lines (non-zero size); zeroed memory is a valid `Line`
            // (float zeros); the vector takes the allocation with the layout it was made with.
            unsafe {
                let p = std::alloc::alloc_zeroed(layout) as *mut Line;
                if p.is_null() {
                    std::alloc::handle_alloc_error(layout);
                }
                Vec::from_raw_parts(p, n, n)
            }
        };
        AlignedF32 { lines, len }
    }

    #[cfg(test)]
    fn as_slice(&self) -> &[f32] {
        // SAFETY: the lines are `16 * lines.len() >= len` contiguous initialised f32.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr() as *const f32, self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr() as *mut f32, self.len) }
    }
}

/// Slab element type (float32; a float64 within-group pass used it until session 9).
trait Lane: Copy + Default + Send + Sync + 'static {
    /// Cells per slab block.
    const W: usize;
    fn from_f32(v: f32) -> Self;
    /// `acc[k] += sum_e val[e] * chunk[off[e] * W + k]`; `chunk` is `[gene in chunk][W]`, `acc` has
    /// `W` lanes.
    fn kernel(chunk: &[Self], off: &[u16], val: &[f32], acc: &mut [Self], simd: Simd);
}

#[inline(always)]
fn kernel_generic<T: Lane + std::ops::Mul<Output = T> + std::ops::AddAssign>(
    chunk: &[T],
    off: &[u16],
    val: &[f32],
    acc: &mut [T],
) {
    for (&o, &v) in off.iter().zip(val) {
        let v = T::from_f32(v);
        let o = o as usize;
        let row = &chunk[o * T::W..(o + 1) * T::W];
        for (a, &r) in acc.iter_mut().zip(row) {
            *a += v * r;
        }
    }
}

impl Lane for f32 {
    const W: usize = W32;
    fn from_f32(v: f32) -> Self {
        v
    }
    fn kernel(chunk: &[f32], off: &[u16], val: &[f32], acc: &mut [f32], simd: Simd) {
        assert_eq!(acc.len(), W32);
        match simd {
            // SAFETY: `Simd::detect` only gives these where the CPU has the features; `acc` has W32 lanes.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => unsafe { kernel_f32_avx512(chunk, off, val, acc) },
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => unsafe { kernel_f32_avx2(chunk, off, val, acc) },
            _ => kernel_generic(chunk, off, val, acc),
        }
    }
}

/// AVX2 lanes per pass of the float32 kernel (8 registers of 8).
const PASS32: usize = 64;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_f32_avx2(chunk: &[f32], off: &[u16], val: &[f32], acc: &mut [f32]) {
    use std::arch::x86_64::*;
    let n_rows = chunk.len() / W32;
    // 16 registers hold 8 accumulators, not W32 / 8: one pass over the non-zeros per 64 lanes
    for lane0 in (0..W32).step_by(PASS32) {
        let p = chunk.as_ptr().add(lane0);
        let q = acc.as_mut_ptr().add(lane0);
        let mut a = [_mm256_setzero_ps(); PASS32 / 8];
        for (k, ak) in a.iter_mut().enumerate() {
            *ak = _mm256_loadu_ps(q.add(8 * k));
        }
        for (&o, &v) in off.iter().zip(val) {
            let o = o as usize;
            // offsets are built from genes inside this chunk; checked so a bad tile cannot read past it
            assert!(o < n_rows, "gene offset outside its chunk");
            let r = p.add(o * W32);
            let vv = _mm256_set1_ps(v);
            for (k, ak) in a.iter_mut().enumerate() {
                *ak = _mm256_fmadd_ps(vv, _mm256_loadu_ps(r.add(8 * k)), *ak);
            }
        }
        for (k, ak) in a.iter().enumerate() {
            _mm256_storeu_ps(q.add(8 * k), *ak);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_f32_avx512(chunk: &[f32], off: &[u16], val: &[f32], acc: &mut [f32]) {
    use std::arch::x86_64::*;
    let n_rows = chunk.len() / W32;
    let p = chunk.as_ptr();
    let q = acc.as_mut_ptr();
    let mut a = [_mm512_setzero_ps(); W32 / 16];
    for (k, ak) in a.iter_mut().enumerate() {
        *ak = _mm512_loadu_ps(q.add(16 * k));
    }
    for (&o, &v) in off.iter().zip(val) {
        let o = o as usize;
        assert!(o < n_rows, "gene offset outside its chunk");
        let r = p.add(o * W32);
        let vv = _mm512_set1_ps(v);
        for (k, ak) in a.iter_mut().enumerate() {
            *ak = _mm512_fmadd_ps(vv, _mm512_loadu_ps(r.add(16 * k)), *ak);
        }
    }
    for (k, ak) in a.iter().enumerate() {
        _mm512_storeu_ps(q.add(16 * k), *ak);
    }
}

/// Hint to load the cache line holding `x` (no effect where unsupported).
#[inline(always)]
fn prefetch(x: *const f32) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: prefetching is a hint; any address is allowed and nothing is dereferenced.
        unsafe { std::arch::x86_64::_mm_prefetch(x as *const i8, std::arch::x86_64::_MM_HINT_T0) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// `acc64[i] += acc[i] as f64; acc[i] = 0` for every lane: the float32 partial sums moved into
/// float64. Widening is exact and each lane's add is one IEEE add, so every path gives the same bits;
/// the AVX-512 one does 16 lanes per step where the baseline build does 2 (it was a quarter of the
/// pass's own time).
fn flush(acc64: &mut [f64], acc: &mut [f32], simd: Simd) {
    assert_eq!(acc64.len(), acc.len());
    #[cfg(target_arch = "x86_64")]
    if simd == Simd::Avx512 {
        // SAFETY: `Simd::detect` only gives Avx512 where the CPU has it; the lengths match.
        return unsafe { flush_avx512(acc64, acc) };
    }
    let _ = simd;
    for (a64, a) in acc64.iter_mut().zip(acc.iter_mut()) {
        *a64 += *a as f64;
        *a = 0.0;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn flush_avx512(acc64: &mut [f64], acc: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = acc.len() / 16 * 16;
    let (p, q) = (acc.as_mut_ptr(), acc64.as_mut_ptr());
    for i in (0..n).step_by(16) {
        let v = _mm512_loadu_ps(p.add(i));
        let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
        let hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))));
        _mm512_storeu_pd(q.add(i), _mm512_add_pd(_mm512_loadu_pd(q.add(i)), lo));
        _mm512_storeu_pd(q.add(i + 8), _mm512_add_pd(_mm512_loadu_pd(q.add(i + 8)), hi));
        _mm512_storeu_ps(p.add(i), _mm512_setzero_ps());
    }
    for i in n..acc.len() {
        *q.add(i) += *p.add(i) as f64;
        *p.add(i) = 0.0;
    }
}

/// The vector kernels, narrowest first. All give the same sums, bit for bit (one FMA per lane per
/// non-zero, in the same order); the scalar path's sums differ in the last bits (no fused
/// multiply-add).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Simd {
    Scalar,
    Avx2,
    Avx512,
}

impl Simd {
    /// The widest kernel this CPU runs.
    pub(crate) fn widest() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            if avx2 && is_x86_feature_detected!("avx512f") {
                Simd::Avx512
            } else if avx2 {
                Simd::Avx2
            } else {
                Simd::Scalar
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Simd::Scalar
        }
    }

    /// [`widest`](Self::widest), narrowed by the environment variable `SCALE_SIMD=avx2|scalar` (for
    /// A/B timing).
    pub(crate) fn detect() -> Simd {
        let widest = Simd::widest();
        match std::env::var("SCALE_SIMD").as_deref() {
            Ok("scalar") => Simd::Scalar,
            Ok("avx2") => widest.min(Simd::Avx2),
            _ => widest,
        }
    }
}

/// Pairs closer than this share of `|x|^2 + |y|^2` (squared) get their distance from
/// [`direct_distance`]: the float32 dot product there loses too many digits. Unrelated cells sit far
/// above it (18,000-gene benchmark, 2,000 random pairs per file: d^2 is 22-48% of the norms),
/// copies at 0.
const NEAR: f64 = 0.02;

/// `sqrt(sum_g (x_g - y_g)^2)` over rows `a` and `b` (sorted indices), in float64: exactly 0 for
/// identical rows.
fn direct_distance(m: &CsrMatrix, a: usize, b: usize) -> f64 {
    let ((ia, va), (ib, vb)) = (m.row(a), m.row(b));
    let (mut i, mut j, mut s) = (0, 0, 0f64);
    while i < ia.len() || j < ib.len() {
        let d = match (ia.get(i), ib.get(j)) {
            (Some(&ca), Some(&cb)) if ca == cb => {
                let d = va[i] as f64 - vb[j] as f64;
                i += 1;
                j += 1;
                d
            }
            (Some(&ca), Some(&cb)) if ca < cb => {
                i += 1;
                va[i - 1] as f64
            }
            (Some(_), None) => {
                i += 1;
                va[i - 1] as f64
            }
            _ => {
                j += 1;
                vb[j - 1] as f64
            }
        };
        s += d * d;
    }
    s.sqrt()
}

/// Sum over tile rows `r` in `row_range` and the cells `c != r` of slab blocks `block_range` of the
/// Euclidean distance. `slabs`: `[block][gene][W32]` of the cells `cols` (zero-padded); `norms`:
/// squared row norms. (Reading each row's CSR slice in place instead of a tile was 2x slower: 128
/// scattered streams defeat the hardware prefetcher.)
#[allow(clippy::too_many_arguments)]
fn tile_cross_sum(
    tile: &Tile,
    rows: &[usize],
    row_range: std::ops::Range<usize>,
    slabs: &[f32],
    block_range: std::ops::Range<usize>,
    cols: &[usize],
    norms: &[f64],
    m: &CsrMatrix,
    simd: Simd,
) -> f64 {
    let n_genes = m.n_cols;
    let w = W32;
    let n = tile.n;
    let (r0, r1) = (row_range.start, row_range.end.min(n));
    if r0 >= r1 {
        return 0.0;
    }
    let n_chunks = n_genes.div_ceil(GC);
    let mut acc_lines = AlignedF32::zeroed((r1 - r0) * w);
    let acc = acc_lines.as_mut_slice();
    let mut acc64 = vec![0f64; (r1 - r0) * w];
    let mut sum = 0.0;
    for b in block_range {
        acc64.iter_mut().for_each(|a| *a = 0.0);
        let slab = &slabs[b * n_genes * w..(b + 1) * n_genes * w];
        for c in 0..n_chunks {
            let (base, bound) = (c * GC, ((c + 1) * GC).min(n_genes));
            let chunk = &slab[base * w..bound * w];
            // The chunk's rows are read in gene order of each cell, not sequentially, so the hardware
            // prefetcher misses them: fetch the next chunk ahead, a few lines per cell.
            let next = &slab[(bound * w).min(slab.len())..((c + 2) * GC).min(n_genes) * w];
            let elems_per_line = 64 / std::mem::size_of::<f32>();
            let n_lines = next.len() / elems_per_line;
            let lines_per_row = n_lines.div_ceil(r1 - r0);
            for (k, a) in acc.chunks_exact_mut(w).enumerate() {
                for l in (k * lines_per_row).min(n_lines)..((k + 1) * lines_per_row).min(n_lines) {
                    prefetch(next.as_ptr().wrapping_add(l * elems_per_line));
                }
                let i = r0 + k;
                let (s, e) = (tile.ptr[c * n + i] as usize, tile.ptr[c * n + i + 1] as usize);
                if s < e {
                    f32::kernel(chunk, &tile.off[s..e], &tile.val[s..e], a, simd);
                }
            }
            if (c + 1) % FLUSH == 0 || c + 1 == n_chunks {
                flush(acc64.as_mut_slice(), acc, simd);
            }
        }
        let bc = &cols[b * w..((b + 1) * w).min(cols.len())];
        for (&r, a) in rows[r0..r1].iter().zip(acc64.chunks_exact(w)) {
            for (k, &c) in bc.iter().enumerate() {
                // sklearn sets the self-distance to exactly 0
                if r != c {
                    let d2 = norms[r] + norms[c] - 2.0 * a[k];
                    sum += if d2 >= NEAR * (norms[r] + norms[c]) {
                        d2.sqrt()
                    } else {
                        direct_distance(m, r, c)
                    };
                }
            }
        }
    }
    sum
}

/// Tile `t`'s share of a sum over ordered pairs of distinct cells of one group whose cells are laid
/// out as consecutive tiles of `TILE` and, on the dense side, slab blocks of `block_w` (`n_blocks` in
/// all). The distance is symmetric, so each unordered pair is computed once and counted twice: the
/// tile's own blocks against their own rows (both orders are in there) and the tile's later rows,
/// then every later block against all rows. `block_sum(rows, blocks)` sums tile rows × block cells.
fn symmetric_tile_sum(
    t: usize,
    tile_n: usize,
    block_w: usize,
    n_blocks: usize,
    mut block_sum: impl FnMut(std::ops::Range<usize>, std::ops::Range<usize>) -> f64,
) -> f64 {
    let first = t * (TILE / block_w);
    let mut sum = 0.0;
    for k in 0..tile_n.div_ceil(block_w) {
        let b = first + k;
        let own = k * block_w..((k + 1) * block_w).min(tile_n);
        sum += block_sum(own.clone(), b..b + 1);
        sum += 2.0 * block_sum(own.end..tile_n, b..b + 1);
    }
    let after = first + TILE / block_w;
    if after < n_blocks {
        sum += 2.0 * block_sum(0..tile_n, after..n_blocks);
    }
    sum
}

/// Writes tile rows `first..first + count` (at most `T::W`) into the zeroed slab block `slab`
/// (`[gene][T::W]`), or zeroes them again (`value` false). The tile is chunk-major, so the writes
/// of one chunk (32 KiB of slab) stay in L1.
fn fill_from_tile<T: Lane>(tile: &Tile, first: usize, count: usize, slab: &mut [T], value: bool) {
    let n = tile.n;
    let n_chunks = (tile.ptr.len() - 1) / n.max(1);
    for c in 0..n_chunks {
        for k in 0..count {
            let i = first + k;
            let (s, e) = (tile.ptr[c * n + i] as usize, tile.ptr[c * n + i + 1] as usize);
            for (&o, &v) in tile.off[s..e].iter().zip(&tile.val[s..e]) {
                slab[(c * GC + o as usize) * T::W + k] = if value { T::from_f32(v) } else { T::default() };
            }
        }
    }
}

/// Sum of the distances over ordered pairs of distinct cells of one group, given as its tiles
/// (both orders counted): the same kernel with the group's own cells as the dense side, slab
/// blocks filled one at a time from the tiles.
/// `slab` is zero on entry and on return (a thread reuses it from group to group: a fresh 9 MB
/// block per group cost a page-zeroing pass each time).
fn within_sum(tiles: &[(Tile, &[usize])], norms: &[f64], m: &CsrMatrix, simd: Simd, slab: &mut AlignedF32) -> f64 {
    let cells: Vec<usize> = tiles.iter().flat_map(|(_, rows)| rows.iter().copied()).collect();
    let n_blocks = cells.len().div_ceil(W32);
    let blocks_per_tile = TILE / W32;
    let set_block = |slab: &mut [f32], b: usize, value: bool| {
        let (src, k) = (&tiles[b / blocks_per_tile].0, b % blocks_per_tile);
        fill_from_tile(src, k * W32, (src.n - k * W32).min(W32), slab, value);
    };
    if slab.len != m.n_cols * W32 {
        *slab = AlignedF32::zeroed(m.n_cols * W32);
    }
    let slab = slab.as_mut_slice();
    // the slab holds one block at a time
    let mut filled: Option<usize> = None;
    let mut sum = 0.0;
    for (t, (tile, rows)) in tiles.iter().enumerate() {
        sum += symmetric_tile_sum(t, tile.n, W32, n_blocks, |row_range, blocks| {
            let mut s = 0.0;
            for b in blocks {
                if filled != Some(b) {
                    // clear only what the previous block wrote, then write this one
                    if let Some(old) = filled {
                        set_block(slab, old, false);
                    }
                    set_block(slab, b, true);
                    filled = Some(b);
                }
                let block_cells = &cells[b * W32..((b + 1) * W32).min(cells.len())];
                s += tile_cross_sum(tile, rows, row_range.clone(), slab, 0..1, block_cells, norms, m, simd);
            }
            s
        });
    }
    if let Some(old) = filled {
        set_block(slab, old, false);
    }
    sum
}

// Slab blocks are filled from tiles, so a block must not straddle two tiles.
const _: () = assert!(TILE.is_multiple_of(W32));
// The AVX2 kernels run whole passes.
const _: () = assert!(W32.is_multiple_of(PASS32));

/// Per group (indexed like `groups.names`; the control's entry is NaN): energy distance to control.
pub fn energy_distances(x: &Matrix, groups: &Groups, progress: &dyn Progress) -> Vec<f64> {
    energy_distances_with(x, groups, progress, Simd::detect())
}

/// [`energy_distances`] with the kernel given.
fn energy_distances_with(x: &Matrix, groups: &Groups, progress: &dyn Progress, simd: Simd) -> Vec<f64> {
    let csr: std::borrow::Cow<CsrMatrix> = match x {
        Matrix::Csr(m) => std::borrow::Cow::Borrowed(m),
        Matrix::Dense(d) => std::borrow::Cow::Owned(d.to_csr()),
    };
    let m = csr.as_ref();
    let n_genes = m.n_cols;
    let members = groups.members();
    let ctrl = &members[groups.control];
    let norms: Vec<f64> = (0..m.n_rows)
        .into_par_iter()
        .map(|r| m.row(r).1.iter().map(|&v| v as f64 * v as f64).sum())
        .collect();
    let n_groups = groups.names.len();
    let n_blocks = ctrl.len().div_ceil(W32);

    // Control cells: their tiles (the control group's own work items) and, from them, the dense
    // float32 slabs [block][gene][W32], zero-padded.
    let ctrl_tiles: Vec<(Tile, &[usize])> = ctrl.par_chunks(TILE).map(|rows| (Tile::new(m, rows), rows)).collect();
    let mut slab_lines = AlignedF32::zeroed(n_blocks * n_genes * W32);
    let slabs = slab_lines.as_mut_slice();
    slabs
        .par_chunks_mut(n_genes * W32)
        .zip(ctrl.par_chunks(W32))
        .enumerate()
        .for_each(|(b, (slab, cols))| {
            let (t, first) = (b * W32 / TILE, b * W32 % TILE);
            fill_from_tile(&ctrl_tiles[t].0, first, cols.len(), slab, true)
        });

    // Work items: each control tile (cross term only: the control-control sum), and each group,
    // whose tiles serve both its cross and its within term (built once).
    let items: Vec<(usize, Option<usize>)> = (0..ctrl_tiles.len())
        .map(|t| (groups.control, Some(t)))
        .chain((0..n_groups).filter(|&g| g != groups.control).map(|g| (g, None)))
        .collect();
    progress.start("e-distance", items.len() as u64);
    let sums: Vec<(usize, f64, f64)> = items
        .par_iter()
        .map_init(
            || AlignedF32::zeroed(0),
            |slab, &(g, ctrl_tile)| {
                let out = match ctrl_tile {
                    Some(t) => {
                        // control against control: symmetric, each pair once
                        let (tile, rows) = &ctrl_tiles[t];
                        let sum = symmetric_tile_sum(t, tile.n, W32, n_blocks, |row_range, blocks| {
                            tile_cross_sum(tile, rows, row_range, slabs, blocks, ctrl, &norms, m, simd)
                        });
                        (g, sum, 0.0)
                    }
                    None => {
                        let tiles: Vec<(Tile, &[usize])> =
                            members[g].chunks(TILE).map(|rows| (Tile::new(m, rows), rows)).collect();
                        let cross: f64 = tiles
                            .iter()
                            .map(|(tile, rows)| {
                                tile_cross_sum(tile, rows, 0..tile.n, slabs, 0..n_blocks, ctrl, &norms, m, simd)
                            })
                            .sum();
                        (g, cross, within_sum(&tiles, &norms, m, simd, slab))
                    }
                };
                progress.inc(1);
                out
            },
        )
        .collect();
    progress.finish();
    let mut cross_sum = vec![0f64; n_groups];
    let mut within = vec![0f64; n_groups];
    for (g, c, w) in sums {
        cross_sum[g] += c;
        within[g] += w;
    }

    let n_c = ctrl.len() as f64;
    let sigma_c = cross_sum[groups.control] / (n_c * n_c);
    (0..n_groups)
        .map(|g| {
            if g == groups.control {
                return f64::NAN;
            }
            let n = members[g].len() as f64;
            2.0 * cross_sum[g] / (n * n_c) - within[g] / (n * n) - sigma_c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use scale_io::DenseMatrix;

    /// Mean Euclidean distance over every pair (i in a, j in b), the definition the tests check against.
    fn mean_dist(rows: &[Vec<f32>], a: &[usize], b: &[usize]) -> f64 {
        let s: f64 = a
            .iter()
            .flat_map(|&i| b.iter().map(move |&j| (i, j)))
            .map(|(i, j)| dist(&rows[i], &rows[j]))
            .sum();
        s / (a.len() * b.len()) as f64
    }

    fn dist(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    #[test]
    fn matches_direct_definition() {
        let rows: Vec<Vec<f32>> = (0..23)
            .map(|i| {
                (0..7)
                    .map(|j| {
                        if (i * 3 + j) % 4 == 0 {
                            0.0
                        } else {
                            ((i * 7 + j * 3) % 11) as f32 * 0.3
                        }
                    })
                    .collect()
            })
            .collect();
        let labels: Vec<&str> = (0..23).map(|i| if i < 18 { "ctrl" } else { "p" }).collect();
        let d = DenseMatrix {
            n_rows: 23,
            n_cols: 7,
            data: rows.concat(),
        };
        let g = Groups::new(&labels, "ctrl").unwrap();
        let e = energy_distances(&Matrix::Dense(d), &g, &crate::NoProgress);
        let (c, p): (Vec<_>, Vec<_>) = (0..23).partition(|&i| i < 18);
        let mean = |a: &[usize], b: &[usize]| mean_dist(&rows, a, b);
        let expected = 2.0 * mean(&p, &c) - mean(&p, &p) - mean(&c, &c);
        let pi = g.names.iter().position(|n| n == "p").unwrap();
        assert!((e[pi] - expected).abs() < 1e-6, "{} vs {expected}", e[pi]);
    }

    /// A mean predictor repeats one cell: its within-group distances must be 0, which a float32
    /// `|x|^2 + |y|^2 - 2 x.y` would miss by ~1e-3 of the norm (here |x|^2 = 18,000).
    #[test]
    fn identical_cells_have_zero_within_distance() {
        let n_genes = 2000;
        let cell: Vec<f32> = (0..n_genes).map(|g| 3.0 + (g % 7) as f32 * 1e-3).collect();
        let d = DenseMatrix {
            n_rows: 70,
            n_cols: n_genes,
            data: cell.repeat(70),
        };
        let m = d.to_csr();
        let rows: Vec<usize> = (0..70).collect();
        let norms: Vec<f64> = (0..70)
            .map(|r| m.row(r).1.iter().map(|&v| v as f64 * v as f64).sum())
            .collect();
        let tiles: Vec<(Tile, &[usize])> = rows.chunks(TILE).map(|r| (Tile::new(&m, r), r)).collect();
        let mut slab = AlignedF32::zeroed(0);
        let w = within_sum(&tiles, &norms, &m, Simd::detect(), &mut slab);
        assert!(
            slab.as_slice().iter().all(|&v| v == 0.0),
            "the slab is handed back zeroed"
        );
        assert!(w / (70.0 * 70.0) < 1e-5, "mean within distance {}", w / 4900.0);
    }

    /// A prediction that copies control cells: those cross pairs are distance 0, which the float32
    /// dot product alone misses by ~1e-2 here; with them computed directly, E matches the definition.
    #[test]
    fn copies_of_control_cells_match_direct_definition() {
        let n_genes = 300;
        let cell = |i: usize| -> Vec<f32> {
            (0..n_genes)
                .map(|g| {
                    let h = (i * 7919 + g * 104_729) % 23;
                    if h < 8 {
                        0.0
                    } else {
                        1.5 + (h % 5) as f32 * 0.37
                    }
                })
                .collect()
        };
        let ctrl: Vec<Vec<f32>> = (0..20).map(cell).collect();
        // "copy": controls 0..10 again; "mean": one other cell five times
        let mut rows = ctrl.clone();
        rows.extend(ctrl[..10].iter().cloned());
        rows.extend(std::iter::repeat_n(cell(99), 5));
        let labels: Vec<&str> = (0..rows.len())
            .map(|i| match i {
                0..20 => "ctrl",
                20..30 => "copy",
                _ => "mean",
            })
            .collect();
        let d = DenseMatrix {
            n_rows: rows.len(),
            n_cols: n_genes,
            data: rows.concat(),
        };
        let g = Groups::new(&labels, "ctrl").unwrap();
        let e = energy_distances(&Matrix::Dense(d), &g, &crate::NoProgress);
        let idx = |name: &str| -> Vec<usize> { (0..rows.len()).filter(|&i| labels[i] == name).collect() };
        let mean = |a: &[usize], b: &[usize]| mean_dist(&rows, a, b);
        let c = idx("ctrl");
        for name in ["copy", "mean"] {
            let p = idx(name);
            let expected = 2.0 * mean(&p, &c) - mean(&p, &p) - mean(&c, &c);
            let pi = g.names.iter().position(|x| x == name).unwrap();
            // far pairs carry the float32 cross term's ~1e-7 of the distance scale
            let scale = mean(&c, &c);
            assert!(
                (e[pi] - expected).abs() < 1e-6 * scale,
                "{name}: {} vs {expected}",
                e[pi]
            );
        }
    }

    #[test]
    fn direct_distance_merges_sparse_rows() {
        let d = DenseMatrix {
            n_rows: 3,
            n_cols: 5,
            data: vec![
                1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 3.0, 2.0, 0.0, 4.0, 1.0, 0.0, 2.0, 0.0, 0.0,
            ],
        };
        let m = d.to_csr();
        assert_eq!(direct_distance(&m, 0, 1), (1.0f64 + 9.0 + 16.0).sqrt());
        assert_eq!(direct_distance(&m, 1, 0), direct_distance(&m, 0, 1));
        assert_eq!(direct_distance(&m, 0, 2), 0.0);
    }

    /// Larger than one slab block (W32), one gene chunk (GC) and one tile (TILE), with a ragged last
    /// block, so the tiling and padding paths are exercised against the direct definition.
    #[test]
    fn tiled_path_matches_direct_definition() {
        let (n_b, n_genes) = (7, 2 * GC + 11);
        // enough cells that both the control group and "a" span two tiles (the symmetric paths)
        let n = 3 * (TILE + 2) + n_b;
        let rows: Vec<Vec<f32>> = (0..n)
            .map(|i| {
                (0..n_genes)
                    .map(|j| {
                        let h = (i * 7919 + j * 104_729) % 97;
                        if h < 70 {
                            0.0
                        } else {
                            (h % 13) as f32 * 0.25 + (i % 5) as f32 * 0.1
                        }
                    })
                    .collect()
            })
            .collect();
        // controls interleaved with "a" so that group members are not contiguous rows
        let labels: Vec<&str> = (0..n)
            .map(|i| {
                if i >= n - n_b {
                    "b"
                } else if i % 3 == 0 {
                    "ctrl"
                } else {
                    "a"
                }
            })
            .collect();
        let d = DenseMatrix {
            n_rows: n,
            n_cols: n_genes,
            data: rows.concat(),
        };
        let g = Groups::new(&labels, "ctrl").unwrap();
        let x = Matrix::Dense(d);
        let e = energy_distances(&x, &g, &crate::NoProgress);
        // every vector kernel this CPU has gives the same bits as the widest one
        for simd in [Simd::Avx2, Simd::Avx512] {
            if simd <= Simd::widest() {
                let other = energy_distances_with(&x, &g, &crate::NoProgress, simd);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&other), bits(&e), "{simd:?} kernel");
            }
        }
        let idx = |name: &str| -> Vec<usize> { (0..n).filter(|&i| labels[i] == name).collect() };
        let c = idx("ctrl");
        let mean = |a: &[usize], b: &[usize]| mean_dist(&rows, a, b);
        assert!(c.len() > TILE && idx("a").len() > TILE);
        for name in ["a", "b"] {
            let p = idx(name);
            let expected = 2.0 * mean(&p, &c) - mean(&p, &p) - mean(&c, &c);
            let pi = g.names.iter().position(|x| x == name).unwrap();
            // the cross term runs in float32 (relative error ~1e-7, see the module doc)
            assert!(
                (e[pi] - expected).abs() < 1e-6 * expected.abs().max(1.0),
                "{name}: {} vs {expected}",
                e[pi]
            );
        }
    }
}
