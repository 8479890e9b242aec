//! Energy distance of each perturbation's cells to the control cells (cell-eval `pearson_edistance`):
//! `E = 2 mean d(X, C) - mean d(X, X) - mean d(C, C)` with Euclidean `d` over all genes, where the
//! within-group means include the zero diagonal (sklearn `pairwise_distances(x).mean()`).
//!
//! Cost is dominated by the cross distances (every cell × every control cell). They are computed as
//! `sqrt(max(0, |x|^2 + |c|^2 - 2 x.c))` (what sklearn does, in float64) with the dot products as a
//! sparse × dense product: the control cells are laid out once as dense float64 slabs of `W` cells,
//! `[block][gene][W]`, and each work item (a tile of up to `TILE` cells of one group) is re-laid out
//! gene-chunk-major. For one slab block and one chunk of `GC` genes (256 KiB, stays in L2) every
//! cell of the tile runs over its non-zeros in the chunk with `W` accumulators held in registers
//! (AVX2/FMA when the CPU has it). The control cells' own term `E d(C, C)` comes out of the same
//! pass (the control group's tiles), once per call.

use rayon::prelude::*;
use scale_io::{CsrMatrix, Matrix};

use crate::groups::Groups;
use crate::Progress;

/// Control cells per slab block (8 AVX2 registers of 4 float64).
const W: usize = 32;
/// Genes per chunk: one chunk of a slab block is `GC * W * 8` bytes = 256 KiB.
const GC: usize = 64;
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
        let mut ptr = vec![0u32; n_chunks * n + 1];
        for (i, &r) in rows.iter().enumerate() {
            for &g in m.row(r).0 {
                ptr[(g as usize / GC) * n + i + 1] += 1;
            }
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
            for (&g, &x) in idx.iter().zip(v) {
                let k = (g as usize / GC) * n + i;
                let s = next[k] as usize;
                off[s] = (g as usize % GC) as u16;
                val[s] = x;
                next[k] += 1;
            }
        }
        Tile { n, ptr, off, val }
    }
}

/// `acc[k] += sum_e val[e] * chunk[off[e] * W + k]`; `chunk` is `[gene in chunk][W]`.
#[inline(always)]
fn kernel_generic(chunk: &[f64], off: &[u16], val: &[f32], acc: &mut [f64; W]) {
    let mut a = *acc;
    for (&o, &v) in off.iter().zip(val) {
        let v = v as f64;
        let row: &[f64; W] = chunk[o as usize * W..(o as usize + 1) * W]
            .try_into()
            .expect("slab row");
        for k in 0..W {
            a[k] += v * row[k];
        }
    }
    *acc = a;
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2(chunk: &[f64], off: &[u16], val: &[f32], acc: &mut [f64; W]) {
    use std::arch::x86_64::*;
    let n_rows = chunk.len() / W;
    let p = chunk.as_ptr();
    let q = acc.as_mut_ptr();
    let mut a = [_mm256_setzero_pd(); W / 4];
    for (k, ak) in a.iter_mut().enumerate() {
        *ak = _mm256_loadu_pd(q.add(4 * k));
    }
    for (&o, &v) in off.iter().zip(val) {
        let o = o as usize;
        // offsets are built from genes inside this chunk; checked so a bad tile cannot read past it
        assert!(o < n_rows, "gene offset outside its chunk");
        let r = p.add(o * W);
        let vv = _mm256_set1_pd(v as f64);
        for (k, ak) in a.iter_mut().enumerate() {
            *ak = _mm256_fmadd_pd(vv, _mm256_loadu_pd(r.add(4 * k)), *ak);
        }
    }
    for (k, ak) in a.iter().enumerate() {
        _mm256_storeu_pd(q.add(4 * k), *ak);
    }
}

fn kernel(chunk: &[f64], off: &[u16], val: &[f32], acc: &mut [f64; W], avx2: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2 {
            // SAFETY: `avx2` is only true when the CPU supports AVX2 and FMA.
            unsafe { kernel_avx2(chunk, off, val, acc) };
            return;
        }
    }
    let _ = avx2;
    kernel_generic(chunk, off, val, acc)
}

/// Hint to load the cache line holding `x` (no effect where unsupported).
#[inline(always)]
fn prefetch(x: &f64) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: prefetching is a hint; any address is allowed and nothing is dereferenced.
        unsafe { std::arch::x86_64::_mm_prefetch(x as *const f64 as *const i8, std::arch::x86_64::_MM_HINT_T0) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Sum over tile rows `r` and control cells `c != r` of the Euclidean distance.
/// `slabs`: `[block][gene][W]` of the cells `ctrl` (zero-padded); `norms`: squared row norms.
fn tile_cross_sum(tile: &Tile, rows: &[usize], slabs: &[f64], ctrl: &[usize], norms: &[f64], n_genes: usize) -> f64 {
    let avx2 = has_avx2();
    let n = tile.n;
    let n_chunks = n_genes.div_ceil(GC);
    let n_blocks = ctrl.len().div_ceil(W);
    let mut acc = vec![[0f64; W]; n];
    let mut sum = 0.0;
    for b in 0..n_blocks {
        acc.iter_mut().for_each(|a| *a = [0.0; W]);
        let slab = &slabs[b * n_genes * W..(b + 1) * n_genes * W];
        for c in 0..n_chunks {
            let chunk = &slab[c * GC * W..((c + 1) * GC).min(n_genes) * W];
            // The chunk's rows are read in gene order of each cell, not sequentially, so the hardware
            // prefetcher misses them: fetch the next chunk ahead, a few lines per cell.
            let next = &slab[((c + 1) * GC * W).min(slab.len())..((c + 2) * GC).min(n_genes) * W];
            let lines_per_row = (next.len() / 8).div_ceil(n.max(1));
            for (i, a) in acc.iter_mut().enumerate() {
                for l in 0..lines_per_row {
                    if let Some(x) = next.get((i * lines_per_row + l) * 8) {
                        prefetch(x);
                    }
                }
                let (s, e) = (tile.ptr[c * n + i] as usize, tile.ptr[c * n + i + 1] as usize);
                if s < e {
                    kernel(chunk, &tile.off[s..e], &tile.val[s..e], a, avx2);
                }
            }
        }
        let bc = &ctrl[b * W..((b + 1) * W).min(ctrl.len())];
        for (&r, a) in rows.iter().zip(&acc) {
            for (k, &c) in bc.iter().enumerate() {
                // sklearn sets the self-distance to exactly 0
                if r != c {
                    sum += (norms[r] + norms[c] - 2.0 * a[k]).max(0.0).sqrt();
                }
            }
        }
    }
    sum
}

/// Writes the cells `cols` (at most `W`) into the zeroed slab block `slab` (`[gene][W]`).
fn fill_block(m: &CsrMatrix, cols: &[usize], slab: &mut [f64], value: bool) {
    for (k, &c) in cols.iter().enumerate() {
        let (idx, val) = m.row(c);
        for (&g, &v) in idx.iter().zip(val) {
            slab[g as usize * W + k] = if value { v as f64 } else { 0.0 };
        }
    }
}

/// Sum of the distances over ordered pairs of distinct cells of `mem` (both orders counted): the
/// same kernel with the group's own cells as the dense side, one slab block at a time.
fn within_sum(m: &CsrMatrix, mem: &[usize], norms: &[f64]) -> f64 {
    let n_genes = m.n_cols;
    let tiles: Vec<(Tile, &[usize])> = mem.chunks(TILE).map(|rows| (Tile::new(m, rows), rows)).collect();
    let mut slab = vec![0f64; n_genes * W];
    let mut sum = 0.0;
    for cols in mem.chunks(W) {
        fill_block(m, cols, &mut slab, true);
        for (tile, rows) in &tiles {
            sum += tile_cross_sum(tile, rows, &slab, cols, norms, n_genes);
        }
        // clear only what was written
        fill_block(m, cols, &mut slab, false);
    }
    sum
}

/// Per group (indexed like `groups.names`; the control's entry is NaN): energy distance to control.
pub fn energy_distances(x: &Matrix, groups: &Groups, progress: &dyn Progress) -> Vec<f64> {
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
    let n_blocks = ctrl.len().div_ceil(W);

    // Control cells, dense: [block][gene][W], zero-padded.
    let mut slabs = vec![0f64; n_blocks * n_genes * W];
    slabs
        .par_chunks_mut(n_genes * W)
        .zip(ctrl.par_chunks(W))
        .for_each(|(slab, cols)| fill_block(m, cols, slab, true));

    // Work items: tiles of up to TILE cells of one group (the control group included: its tiles
    // give the control-control term).
    let items: Vec<(usize, &[usize])> = members
        .iter()
        .enumerate()
        .flat_map(|(g, mem)| mem.chunks(TILE).map(move |rows| (g, rows)))
        .collect();
    progress.start("e-distance", items.len() as u64 + n_groups as u64);
    let cross: Vec<(usize, f64)> = items
        .par_iter()
        .map(|&(g, rows)| {
            let tile = Tile::new(m, rows);
            let s = tile_cross_sum(&tile, rows, &slabs, ctrl, &norms, n_genes);
            progress.inc(1);
            (g, s)
        })
        .collect();
    drop(slabs);
    let within: Vec<f64> = (0..n_groups)
        .into_par_iter()
        .map(|g| {
            let s = if g == groups.control {
                0.0
            } else {
                within_sum(m, &members[g], &norms)
            };
            progress.inc(1);
            s
        })
        .collect();
    progress.finish();
    let mut cross_sum = vec![0f64; n_groups];
    for (g, s) in cross {
        cross_sum[g] += s;
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
        let mean = |a: &[usize], b: &[usize]| {
            let mut s = 0.0;
            for &i in a {
                for &j in b {
                    s += dist(&rows[i], &rows[j]);
                }
            }
            s / (a.len() * b.len()) as f64
        };
        let expected = 2.0 * mean(&p, &c) - mean(&p, &p) - mean(&c, &c);
        let pi = g.names.iter().position(|n| n == "p").unwrap();
        assert!((e[pi] - expected).abs() < 1e-9, "{} vs {expected}", e[pi]);
    }

    /// Larger than one slab block (W), one gene chunk (GC) and one tile (TILE), with a ragged last
    /// block, so the tiling and padding paths are exercised against the direct definition.
    #[test]
    fn tiled_path_matches_direct_definition() {
        let (n_b, n_genes) = (7, 2 * GC + 11);
        let n = 3 * (TILE / 2 + 2) + n_b;
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
        let e = energy_distances(&Matrix::Dense(d), &g, &crate::NoProgress);
        let idx = |name: &str| -> Vec<usize> { (0..n).filter(|&i| labels[i] == name).collect() };
        let c = idx("ctrl");
        let mean = |a: &[usize], b: &[usize]| {
            let mut s = 0.0;
            for &i in a {
                for &j in b {
                    s += dist(&rows[i], &rows[j]);
                }
            }
            s / (a.len() * b.len()) as f64
        };
        assert!(c.len() > W && idx("a").len() > TILE);
        for name in ["a", "b"] {
            let p = idx(name);
            let expected = 2.0 * mean(&p, &c) - mean(&p, &p) - mean(&c, &c);
            let pi = g.names.iter().position(|x| x == name).unwrap();
            assert!(
                (e[pi] - expected).abs() < 1e-9 * expected.abs().max(1.0),
                "{name}: {} vs {expected}",
                e[pi]
            );
        }
    }
}
