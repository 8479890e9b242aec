//! `cell-eval baseline`: the cell-mean baseline prediction.
//!
//! Every perturbed cell is the mean over groups of the per-group mean expression, and the control
//! cells are copied from the input. Quirk reproduced from cell-eval 0.8.2: the control group's mean
//! is part of that average (it averages every row of its group-by, control included).

use scale_io::{CsrMatrix, Matrix};

use crate::error::{EvalError, Result};
use crate::groups::Groups;
use crate::pseudobulk;

/// The baseline: cells × genes and one label per cell (perturbed cells first, perturbations sorted,
/// as many cells per perturbation as the input has; then the input's control cells in order).
pub struct Baseline {
    pub x: CsrMatrix,
    pub labels: Vec<String>,
    /// Input row of each copied control cell (None for baseline cells).
    pub source_row: Vec<Option<usize>>,
    /// The baseline expression vector (length n_genes).
    pub mean: Vec<f32>,
}

/// Builds the cell-mean baseline from training data `x` (log1p) with labels `labels`.
pub fn cell_mean_baseline(x: &Matrix, labels: &[String], control: &str) -> Result<Baseline> {
    let groups = Groups::new(labels, control).ok_or_else(|| EvalError::ControlMissing {
        which: "baseline input".into(),
        control: control.into(),
        seen: {
            let mut s: Vec<&str> = labels.iter().map(|s| s.as_str()).collect();
            s.sort();
            s.dedup();
            s.truncate(10);
            s.join(", ")
        },
    })?;
    let g = x.n_cols();
    let bulk = pseudobulk(x, &groups);
    let n_groups = groups.names.len();
    let mean: Vec<f32> = (0..g)
        .map(|k| ((0..n_groups).map(|i| bulk[i * g + k] as f64).sum::<f64>() / n_groups as f64) as f32)
        .collect();
    let (cols, vals): (Vec<u32>, Vec<f32>) = mean
        .iter()
        .enumerate()
        .filter(|(_, &v)| v != 0.0)
        .map(|(k, &v)| (k as u32, v))
        .unzip();
    let mut out = CsrMatrix::empty(g);
    let mut out_labels = Vec::new();
    let mut source = Vec::new();
    for (code, name) in groups.perts() {
        for _ in 0..groups.counts[code] {
            out.push_row(&cols, &vals);
            out_labels.push(name.to_string());
            source.push(None);
        }
    }
    let ctrl_rows: Vec<usize> = (0..labels.len())
        .filter(|&r| groups.codes[r] as usize == groups.control)
        .collect();
    match x {
        Matrix::Csr(m) => {
            for &r in &ctrl_rows {
                let (c, v) = m.row(r);
                out.push_row(c, v);
            }
        }
        Matrix::Dense(d) => {
            let sub = d.select_rows(&ctrl_rows).to_csr();
            for r in 0..sub.n_rows {
                let (c, v) = sub.row(r);
                out.push_row(c, v);
            }
        }
    }
    for &r in &ctrl_rows {
        out_labels.push(control.to_string());
        source.push(Some(r));
    }
    Ok(Baseline {
        x: out,
        labels: out_labels,
        source_row: source,
        mean,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use scale_io::DenseMatrix;

    #[test]
    fn averages_group_means_including_control() {
        let d = DenseMatrix {
            n_rows: 4,
            n_cols: 1,
            data: vec![0.0, 2.0, 4.0, 6.0],
        };
        let labels: Vec<String> = ["c", "c", "a", "b"].iter().map(|s| s.to_string()).collect();
        let b = cell_mean_baseline(&Matrix::Dense(d), &labels, "c").unwrap();
        // group means: c = 1, a = 4, b = 6 -> (1 + 4 + 6) / 3
        assert!((b.mean[0] - 11.0 / 3.0).abs() < 1e-6);
        assert_eq!(b.labels, vec!["a", "b", "c", "c"]);
        assert_eq!(b.x.n_rows, 4);
    }
}
