//! `normalize_total` and `log1p` with scanpy's float32 arithmetic, so results match it bit for bit or
//! to the last float32 ulp.

use scale_io::Matrix;

use crate::stats::{check_finite, median_f32};
use crate::PrepError;

/// What `normalize_total` did.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizeReport {
    /// The total every non-empty cell now sums to (given, or the median library size).
    pub target_sum: f64,
    /// Cells with zero total counts (left at zero, as scanpy does, with a warning).
    pub n_zero_cells: usize,
}

/// Scales each cell to sum to `target_sum` (default: the median of the library sizes), in place.
///
/// Numerics follow scanpy 1.11: library sizes are float64 sums stored as float32; the size factor
/// `lib / target` and the division are float32. The default target is scanpy's, which differs by
/// layout: for CSR it is the median over all cells, for dense the median over cells with non-zero
/// totals (identical unless some cells are empty).
pub fn normalize_total(m: &mut Matrix, target_sum: Option<f64>) -> Result<NormalizeReport, PrepError> {
    check_finite(m, "normalize_total input")?;
    if let Some(t) = target_sum {
        if !(t.is_finite() && t > 0.0) {
            return Err(PrepError::InvalidOption {
                option: "target_sum".into(),
                message: format!("must be a positive finite number, got {t}"),
            });
        }
    }
    // shape [n_obs]: library size of each cell
    let lib: Vec<f32> = match &*m {
        Matrix::Csr(c) => (0..c.n_rows)
            .map(|r| c.row(r).1.iter().map(|&v| v as f64).sum::<f64>() as f32)
            .collect(),
        Matrix::Dense(d) => (0..d.n_rows)
            .map(|r| d.row(r).iter().map(|&v| v as f64).sum::<f64>() as f32)
            .collect(),
    };
    let n_zero_cells = lib.iter().filter(|&&l| l == 0.0).count();
    let target: f32 = match target_sum {
        Some(t) => t as f32,
        None => {
            let med = match &*m {
                Matrix::Csr(_) => median_f32(&lib),
                Matrix::Dense(_) => median_f32(&lib.iter().copied().filter(|&l| l > 0.0).collect::<Vec<_>>()),
            };
            match med {
                Some(t) if t > 0.0 => t,
                _ => {
                    return Err(PrepError::Invalid {
                        what: "normalize_total".into(),
                        message: "the median library size is 0 (is the matrix empty?); pass a target sum".into(),
                    })
                }
            }
        }
    };
    if n_zero_cells > 0 {
        tracing::warn!("normalize_total: {n_zero_cells} cells have zero counts and stay zero");
    }
    let factor: Vec<f32> = lib
        .iter()
        .map(|&l| {
            let f = l / target;
            if f == 0.0 {
                1.0
            } else {
                f
            }
        })
        .collect();
    match m {
        Matrix::Csr(c) => {
            for (r, f) in factor.iter().enumerate() {
                let (a, b) = (c.indptr[r] as usize, c.indptr[r + 1] as usize);
                c.data[a..b].iter_mut().for_each(|v| *v /= f);
            }
        }
        Matrix::Dense(d) => {
            for (r, f) in factor.iter().enumerate() {
                d.row_mut(r).iter_mut().for_each(|v| *v /= f);
            }
        }
    }
    Ok(NormalizeReport {
        target_sum: target as f64,
        n_zero_cells,
    })
}

/// `log(1 + x)` of every value in place (float32, as numpy's `log1p` on float32 data).
pub fn log1p(m: &mut Matrix) -> Result<(), PrepError> {
    check_finite(m, "log1p input")?;
    let vals = m.values_mut();
    if let Some(k) = vals.iter().position(|&v| v < 0.0) {
        return Err(PrepError::Invalid {
            what: "log1p input".into(),
            message: format!(
                "negative value {} at stored position {k}; log1p expects non-negative data",
                vals[k]
            ),
        });
    }
    vals.iter_mut().for_each(|v| *v = v.ln_1p());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use scale_io::DenseMatrix;

    fn dense(rows: usize, cols: usize, data: Vec<f32>) -> Matrix {
        Matrix::Dense(DenseMatrix {
            n_rows: rows,
            n_cols: cols,
            data,
        })
    }

    #[test]
    fn rows_sum_to_target() {
        let mut m = dense(3, 2, vec![1.0, 3.0, 2.0, 2.0, 10.0, 0.0]);
        let rep = normalize_total(&mut m, None).unwrap();
        assert_eq!(rep.target_sum, 4.0);
        let d = m.to_dense();
        for r in 0..3 {
            assert!((d.row(r).iter().sum::<f32>() - 4.0).abs() < 1e-6);
        }
    }

    #[test]
    fn zero_cells_and_median_rule_by_layout() {
        let data = vec![0.0, 0.0, 1.0, 1.0, 3.0, 3.0, 5.0, 5.0];
        let mut d = dense(4, 2, data.clone());
        // dense: median over non-empty cells (2, 6, 10) = 6
        assert_eq!(normalize_total(&mut d, None).unwrap().target_sum, 6.0);
        let mut c = Matrix::Csr(dense(4, 2, data).to_dense().to_csr());
        // CSR: median over all cells (0, 2, 6, 10) = 4
        let rep = normalize_total(&mut c, None).unwrap();
        assert_eq!((rep.target_sum, rep.n_zero_cells), (4.0, 1));
    }

    #[test]
    fn rejects_bad_input() {
        let mut m = dense(1, 2, vec![f32::NAN, 1.0]);
        assert!(matches!(
            normalize_total(&mut m, None),
            Err(PrepError::NonFinite { row: 0, col: 0, .. })
        ));
        let mut m = dense(1, 2, vec![1.0, 1.0]);
        assert!(normalize_total(&mut m, Some(-1.0)).is_err());
        let mut m = dense(1, 2, vec![-1.0, 1.0]);
        assert!(log1p(&mut m).is_err());
    }
}
