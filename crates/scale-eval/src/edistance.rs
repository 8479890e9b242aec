//! Energy distance of each perturbation's cells to the control cells (cell-eval `pearson_edistance`):
//! `E = 2 mean d(X, C) - mean d(X, X) - mean d(C, C)` with Euclidean `d` over all genes, where the
//! within-group means include the zero diagonal (sklearn `pairwise_distances(x).mean()`).
//!
//! Cost is dominated by the cross distances (every perturbed cell × every control cell). They are
//! computed as `sqrt(|x|^2 + |c|^2 - 2 x.c)` (what sklearn does, in float64) with the dot products
//! taken sparse-row × dense control block: a block of `CTRL_BLOCK` control cells is laid out
//! gene-major (so one non-zero of `x` touches one short contiguous vector) and every perturbed cell
//! streams its non-zeros past it. Blocks run in parallel.

use rayon::prelude::*;
use scale_io::{CsrMatrix, Matrix};

use crate::groups::Groups;
use crate::Progress;

const CTRL_BLOCK: usize = 16;

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
    progress.start("e-distance", n_blocks as u64 + n_groups as u64);

    // Sum over all cells of each group of the distances to the control cells (the control group's
    // own entry is the control-control sum).
    let cross: Vec<f64> = (0..n_blocks)
        .into_par_iter()
        .map(|b| {
            let cells = &ctrl[b * CTRL_BLOCK..((b + 1) * CTRL_BLOCK).min(ctrl.len())];
            let w = cells.len();
            let mut slab = vec![0f64; n_genes * CTRL_BLOCK];
            for (k, &c) in cells.iter().enumerate() {
                let (idx, val) = m.row(c);
                for (&g, &v) in idx.iter().zip(val) {
                    slab[g as usize * CTRL_BLOCK + k] = v as f64;
                }
            }
            let mut sums = vec![0f64; n_groups];
            for (g, mem) in members.iter().enumerate() {
                let mut s = 0.0;
                for &r in mem {
                    let (idx, val) = m.row(r);
                    let mut acc = [0f64; CTRL_BLOCK];
                    for (&gi, &v) in idx.iter().zip(val) {
                        let v = v as f64;
                        let col = &slab[gi as usize * CTRL_BLOCK..gi as usize * CTRL_BLOCK + CTRL_BLOCK];
                        for k in 0..CTRL_BLOCK {
                            acc[k] += v * col[k];
                        }
                    }
                    for k in 0..w {
                        let d2 = norms[r] + norms[cells[k]] - 2.0 * acc[k];
                        // sklearn sets the self-distance to exactly 0
                        if r != cells[k] {
                            s += d2.max(0.0).sqrt();
                        }
                    }
                }
                sums[g] = s;
            }
            progress.inc(1);
            sums
        })
        .reduce(|| vec![0f64; n_groups], |a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect());

    let n_c = ctrl.len() as f64;
    let sigma_c = cross[groups.control] / (n_c * n_c);
    let out: Vec<f64> = (0..n_groups)
        .into_par_iter()
        .map(|g| {
            if g == groups.control {
                return f64::NAN;
            }
            let mem = &members[g];
            let n = mem.len() as f64;
            // within-group distances: dense scatter of one cell, gather for the others
            let mut buf = vec![0f64; n_genes];
            let mut within = 0.0;
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
            progress.inc(1);
            2.0 * cross[g] / (n * n_c) - within / (n * n) - sigma_c
        })
        .collect();
    progress.finish();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use scale_io::DenseMatrix;

    fn dist(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>().sqrt()
    }

    #[test]
    fn matches_direct_definition() {
        let rows: Vec<Vec<f32>> = (0..23)
            .map(|i| (0..7).map(|j| if (i * 3 + j) % 4 == 0 { 0.0 } else { ((i * 7 + j * 3) % 11) as f32 * 0.3 }).collect())
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
