//! Value checks every command runs on its inputs: finite values, and non-negative integral counts where
//! raw counts are expected. Errors name the file, the matrix, the cell and the gene.

use std::path::Path;

use crate::{H5adError, Matrix};

/// First stored value failing `bad`, as (row, col, value).
fn first_bad(m: &Matrix, bad: impl Fn(f32) -> bool) -> Option<(usize, usize, f32)> {
    match m {
        Matrix::Dense(d) => d
            .data
            .iter()
            .position(|&v| bad(v))
            .map(|i| (i / d.n_cols, i % d.n_cols, d.data[i])),
        Matrix::Csr(c) => {
            let k = c.data.iter().position(|&v| bad(v))?;
            // The row holding stored element k: the last indptr entry <= k.
            let row = c.indptr.partition_point(|&p| p as usize <= k) - 1;
            Some((row, c.indices[k] as usize, c.data[k]))
        }
    }
}

/// Fails on NaN or ±inf, naming the first offending cell and gene. `row_offset` locates a row block.
pub fn check_finite(m: &Matrix, file: &Path, path: &str, row_offset: usize) -> Result<(), H5adError> {
    match first_bad(m, |v| !v.is_finite()) {
        None => Ok(()),
        Some((row, col, value)) => Err(H5adError::BadValue {
            file: file.to_path_buf(),
            path: path.to_string(),
            row: row + row_offset,
            col,
            value: value as f64,
            problem: "not finite (NaN or infinite)".into(),
        }),
    }
}

/// Fails unless every value is a finite, non-negative integer (raw UMI counts).
pub fn check_counts(m: &Matrix, file: &Path, path: &str, row_offset: usize) -> Result<(), H5adError> {
    check_finite(m, file, path, row_offset)?;
    match first_bad(m, |v| v < 0.0 || v.fract() != 0.0) {
        None => Ok(()),
        Some((row, col, value)) => Err(H5adError::BadValue {
            file: file.to_path_buf(),
            path: path.to_string(),
            row: row + row_offset,
            col,
            value: value as f64,
            problem: if value < 0.0 {
                "negative; raw counts must be >= 0"
            } else {
                "not an integer; raw counts expected"
            }
            .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CsrMatrix;

    #[test]
    fn names_cell_and_gene_of_nan_in_sparse_matrix() {
        let mut m = CsrMatrix::empty(5);
        m.push_row(&[1], &[1.0]);
        m.push_row(&[], &[]);
        m.push_row(&[0, 3], &[2.0, f32::NAN]);
        let err = check_finite(&Matrix::Csr(m), Path::new("f.h5ad"), "X", 10).unwrap_err();
        match err {
            H5adError::BadValue { row, col, .. } => assert_eq!((row, col), (12, 3)),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn negative_counts_are_rejected() {
        let m = Matrix::Dense(crate::DenseMatrix {
            n_rows: 2,
            n_cols: 2,
            data: vec![1.0, 0.0, -1.0, 3.0],
        });
        let err = check_counts(&m, Path::new("f.h5ad"), "layers/counts", 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("f.h5ad") && err.contains("layers/counts") && err.contains("cell 1, gene 0"),
            "{err}"
        );
    }
}
