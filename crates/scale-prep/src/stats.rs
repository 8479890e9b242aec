//! Per-gene mean and variance exactly as scanpy's `_get_mean_var` computes them: float64 sums of the
//! float32 values and of their float32 squares, then the unbiased (n − 1) variance.

use scale_io::Matrix;

/// Column (gene) means and unbiased variances over `rows` (all rows when `None`), after applying `f`
/// to every stored value (`f(0)` must be 0; used for `expm1` on log data). Shapes: both `[n_cols]`.
pub fn col_mean_var(m: &Matrix, rows: Option<&[usize]>, f: impl Fn(f32) -> f32) -> (Vec<f64>, Vec<f64>) {
    let n_cols = m.n_cols();
    let mut sum = vec![0f64; n_cols];
    let mut sq = vec![0f64; n_cols];
    let mut add_row = |r: usize| match m {
        Matrix::Csr(c) => {
            let (idx, vals) = c.row(r);
            for (&j, &v) in idx.iter().zip(vals) {
                let v = f(v);
                sum[j as usize] += v as f64;
                // scanpy squares in the input precision (float32) before accumulating in float64
                sq[j as usize] += (v * v) as f64;
            }
        }
        Matrix::Dense(d) => {
            for (j, &v) in d.row(r).iter().enumerate() {
                let v = f(v);
                sum[j] += v as f64;
                sq[j] += (v * v) as f64;
            }
        }
    };
    let n = match rows {
        Some(rs) => {
            rs.iter().for_each(|&r| add_row(r));
            rs.len()
        }
        None => {
            (0..m.n_rows()).for_each(&mut add_row);
            m.n_rows()
        }
    };
    let nf = n as f64;
    let mut mean = vec![0f64; n_cols];
    let mut var = vec![0f64; n_cols];
    for j in 0..n_cols {
        mean[j] = sum[j] / nf;
        var[j] = sq[j] / nf - mean[j] * mean[j];
        if n != 1 {
            var[j] *= nf / (nf - 1.0);
        }
    }
    (mean, var)
}

/// Number of rows in `rows` (all when `None`) with a value > 0, per column (scanpy's `filter_genes`
/// with `min_cells=1`).
pub fn col_n_positive(m: &Matrix, rows: Option<&[usize]>) -> Vec<usize> {
    let mut cnt = vec![0usize; m.n_cols()];
    let mut add_row = |r: usize| match m {
        Matrix::Csr(c) => {
            let (idx, vals) = c.row(r);
            for (&j, &v) in idx.iter().zip(vals) {
                cnt[j as usize] += (v > 0.0) as usize;
            }
        }
        Matrix::Dense(d) => {
            for (j, &v) in d.row(r).iter().enumerate() {
                cnt[j] += (v > 0.0) as usize;
            }
        }
    };
    match rows {
        Some(rs) => rs.iter().for_each(|&r| add_row(r)),
        None => (0..m.n_rows()).for_each(&mut add_row),
    }
    cnt
}

/// Fails on the first non-finite stored value, naming its cell and gene.
pub fn check_finite(m: &Matrix, what: &str) -> Result<(), crate::PrepError> {
    let bad = |row: usize, col: usize, value: f32| crate::PrepError::NonFinite {
        what: what.to_string(),
        row,
        col,
        value,
    };
    match m {
        Matrix::Csr(c) => {
            for r in 0..c.n_rows {
                let (idx, vals) = c.row(r);
                if let Some(k) = vals.iter().position(|v| !v.is_finite()) {
                    return Err(bad(r, idx[k] as usize, vals[k]));
                }
            }
        }
        Matrix::Dense(d) => {
            if let Some(k) = d.data.iter().position(|v| !v.is_finite()) {
                return Err(bad(k / d.n_cols.max(1), k % d.n_cols.max(1), d.data[k]));
            }
        }
    }
    Ok(())
}

/// Median as numpy computes it for a float32 array: the mean of the two middle values, in float32.
pub fn median_f32(v: &[f32]) -> Option<f32> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use scale_io::DenseMatrix;

    #[test]
    fn mean_var_unbiased() {
        let d = DenseMatrix {
            n_rows: 3,
            n_cols: 2,
            data: vec![1.0, 0.0, 2.0, 0.0, 3.0, 6.0],
        };
        let (m, v) = col_mean_var(&Matrix::Dense(d.clone()), None, |x| x);
        assert_eq!(m, vec![2.0, 2.0]);
        assert!((v[0] - 1.0).abs() < 1e-12 && (v[1] - 12.0).abs() < 1e-12);
        let (m2, v2) = col_mean_var(&Matrix::Csr(d.to_csr()), Some(&[0, 2]), |x| x);
        assert_eq!(m2, vec![2.0, 3.0]);
        assert!((v2[0] - 2.0).abs() < 1e-12 && (v2[1] - 18.0).abs() < 1e-12);
    }

    #[test]
    fn median_even_odd() {
        assert_eq!(median_f32(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median_f32(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median_f32(&[]), None);
    }
}
