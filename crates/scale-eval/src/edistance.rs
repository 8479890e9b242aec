//! Energy distance of each perturbation's cells to the control cells (cell-eval `pearson_edistance`):
//! `E = 2 mean d(X, C) - mean d(X, X) - mean d(C, C)` with Euclidean `d` over all genes, where the
//! within-group means include the zero diagonal (sklearn `pairwise_distances(x).mean()`).
//!
//! Cost is dominated by the cross distances (every perturbed cell × every control cell). They are
//! computed as `sqrt(|x|^2 + |c|^2 - 2 x.c)` (what sklearn does, in float64). The control cells are
//! laid out once as dense gene-major blocks of `CTRL_BLOCK` cells; each group's cells are transposed
//! to gene-major sparse lists, so one gene's block row (16 control values) is loaded once and used by
//! every non-zero of that gene in the group, accumulating into a small per-group buffer that stays
//! in L1. Groups run in parallel; the inner loop uses AVX2/FMA when the CPU has it.

use rayon::prelude::*;
use scale_io::{CsrMatrix, Matrix};

use crate::groups::Groups;
use crate::Progress;

const CTRL_BLOCK: usize = 16;

/// acc[cell][k] += v * slab_row[k] over the group's gene-major non-zeros.
/// `gptr[g]..gptr[g+1]` indexes `cells`/`vals` for gene g; `slab` is `[gene][CTRL_BLOCK]`.
#[inline(always)]
fn accumulate(slab: &[f64], gptr: &[u32], cells: &[u32], vals: &[f64], acc: &mut [f64], fused: bool) {
    for g in 0..gptr.len() - 1 {
        let (a, b) = (gptr[g] as usize, gptr[g + 1] as usize);
        if a == b {
            continue;
        }
        let row: &[f64; CTRL_BLOCK] = slab[g * CTRL_BLOCK..(g + 1) * CTRL_BLOCK]
            .try_into()
            .expect("block row");
        for e in a..b {
            let v = vals[e];
            let c = cells[e] as usize;
            let out: &mut [f64; CTRL_BLOCK] = (&mut acc[c * CTRL_BLOCK..(c + 1) * CTRL_BLOCK])
                .try_into()
                .expect("acc row");
            for k in 0..CTRL_BLOCK {
                out[k] = if fused {
                    v.mul_add(row[k], out[k])
                } else {
                    out[k] + v * row[k]
                };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn accumulate_avx2(slab: &[f64], gptr: &[u32], cells: &[u32], vals: &[f64], acc: &mut [f64]) {
    accumulate(slab, gptr, cells, vals, acc, true)
}

fn accumulate_dispatch(slab: &[f64], gptr: &[u32], cells: &[u32], vals: &[f64], acc: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function was compiled for.
            unsafe { accumulate_avx2(slab, gptr, cells, vals, acc) };
            return;
        }
    }
    accumulate(slab, gptr, cells, vals, acc, false)
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
        .map(|r| m.row(r).1.iter().map(|&v| v as f64 * v as f64).sum())
        .collect();
    let n_groups = groups.names.len();
    let n_blocks = ctrl.len().div_ceil(CTRL_BLOCK);
    progress.start("e-distance", n_groups as u64);

    // Control cells, dense: [block][gene][CTRL_BLOCK], zero-padded.
    let mut slabs = vec![0f64; n_blocks * n_genes * CTRL_BLOCK];
    for (i, &c) in ctrl.iter().enumerate() {
        let (b, k) = (i / CTRL_BLOCK, i % CTRL_BLOCK);
        let (idx, val) = m.row(c);
        for (&g, &v) in idx.iter().zip(val) {
            slabs[(b * n_genes + g as usize) * CTRL_BLOCK + k] = v as f64;
        }
    }

    // Per group: (sum of distances to all control cells, sum of within-group distances).
    let sums: Vec<(f64, f64)> = (0..n_groups)
        .into_par_iter()
        .map(|g| {
            let mem = &members[g];
            // gene-major transpose of the group's cells
            let mut gptr = vec![0u32; n_genes + 1];
            for &r in mem {
                for &c in m.row(r).0 {
                    gptr[c as usize + 1] += 1;
                }
            }
            for i in 0..n_genes {
                gptr[i + 1] += gptr[i];
            }
            let nnz = gptr[n_genes] as usize;
            let mut next = gptr.clone();
            let mut cells = vec![0u32; nnz];
            let mut vals = vec![0f64; nnz];
            for (li, &r) in mem.iter().enumerate() {
                let (idx, val) = m.row(r);
                for (&c, &v) in idx.iter().zip(val) {
                    let s = next[c as usize] as usize;
                    cells[s] = li as u32;
                    vals[s] = v as f64;
                    next[c as usize] += 1;
                }
            }
            let mut acc = vec![0f64; mem.len() * CTRL_BLOCK];
            let mut cross = 0.0;
            for b in 0..n_blocks {
                acc.iter_mut().for_each(|a| *a = 0.0);
                let slab = &slabs[b * n_genes * CTRL_BLOCK..(b + 1) * n_genes * CTRL_BLOCK];
                accumulate_dispatch(slab, &gptr, &cells, &vals, &mut acc);
                let bc = &ctrl[b * CTRL_BLOCK..((b + 1) * CTRL_BLOCK).min(ctrl.len())];
                for (li, &r) in mem.iter().enumerate() {
                    for (k, &c) in bc.iter().enumerate() {
                        // sklearn sets the self-distance to exactly 0
                        if r != c {
                            let d2 = norms[r] + norms[c] - 2.0 * acc[li * CTRL_BLOCK + k];
                            cross += d2.max(0.0).sqrt();
                        }
                    }
                }
            }
            let mut within = 0.0;
            if g != groups.control {
                // within-group distances: dense scatter of one cell, gather for the others
                let mut buf = vec![0f64; n_genes];
                for (i, &a) in mem.iter().enumerate() {
                    let (ia, va) = m.row(a);
                    for (&gi, &v) in ia.iter().zip(va) {
                        buf[gi as usize] = v as f64;
                    }
                    for &b in &mem[i + 1..] {
                        let (ib, vb) = m.row(b);
                        let dot: f64 = ib.iter().zip(vb).map(|(&gi, &v)| v as f64 * buf[gi as usize]).sum();
                        within += 2.0 * (norms[a] + norms[b] - 2.0 * dot).max(0.0).sqrt();
                    }
                    for &gi in ia {
                        buf[gi as usize] = 0.0;
                    }
                }
            }
            progress.inc(1);
            (cross, within)
        })
        .collect();
    progress.finish();

    let n_c = ctrl.len() as f64;
    let sigma_c = sums[groups.control].0 / (n_c * n_c);
    (0..n_groups)
        .map(|g| {
            if g == groups.control {
                return f64::NAN;
            }
            let n = members[g].len() as f64;
            2.0 * sums[g].0 / (n * n_c) - sums[g].1 / (n * n) - sigma_c
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
}
