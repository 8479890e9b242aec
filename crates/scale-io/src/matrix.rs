//! In-memory expression matrices: compressed sparse rows and dense row-major.
//!
//! Values are `f32` everywhere: single-cell matrices are stored as float32 by anndata/scanpy, and
//! cell-eval takes its means on float32 data. Integer and float64 inputs are converted on read
//! (the source dtype is kept in [`crate::MatrixInfo`] for reporting).

/// Cells × genes in CSR layout. `indptr` has `n_rows + 1` entries; column indices of a row are
/// strictly increasing after [`CsrMatrix::sort_indices`] (anndata does not guarantee it on read).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CsrMatrix {
    pub n_rows: usize,
    pub n_cols: usize,
    pub indptr: Vec<u64>,
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

/// Cells × genes, row-major: element (r, c) is `data[r * n_cols + c]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DenseMatrix {
    pub n_rows: usize,
    pub n_cols: usize,
    pub data: Vec<f32>,
}

/// `X`, a layer, or a row block of either.
#[derive(Debug, Clone, PartialEq)]
pub enum Matrix {
    Csr(CsrMatrix),
    Dense(DenseMatrix),
}

impl CsrMatrix {
    pub fn empty(n_cols: usize) -> Self {
        Self {
            n_rows: 0,
            n_cols,
            indptr: vec![0],
            indices: Vec::new(),
            data: Vec::new(),
        }
    }

    pub fn nnz(&self) -> usize {
        self.data.len()
    }

    /// (column indices, values) of row `r`.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[r] as usize, self.indptr[r + 1] as usize);
        (&self.indices[a..b], &self.data[a..b])
    }

    /// Appends one row given as sorted (column, value) pairs; explicit zeros are kept as given.
    pub fn push_row(&mut self, cols: &[u32], vals: &[f32]) {
        debug_assert_eq!(cols.len(), vals.len());
        self.indices.extend_from_slice(cols);
        self.data.extend_from_slice(vals);
        self.indptr.push(self.indices.len() as u64);
        self.n_rows += 1;
    }

    /// Sorts the column indices within each row (anndata may store them unsorted). Rows are sorted in
    /// parallel, each as packed `(column, value bits)` keys with an unstable sort (columns within a
    /// row are distinct, so stability is moot): a stable sort of (column, value) pairs was a fifth of
    /// reading an 18,000-gene file whose rows came unsorted.
    pub fn sort_indices(&mut self) {
        use rayon::prelude::*;
        let mut rows: Vec<(&mut [u32], &mut [f32])> = Vec::with_capacity(self.n_rows);
        let (mut idx, mut val) = (&mut self.indices[..], &mut self.data[..]);
        for r in 0..self.n_rows {
            let len = (self.indptr[r + 1] - self.indptr[r]) as usize;
            let (i, rest_i) = std::mem::take(&mut idx).split_at_mut(len);
            let (v, rest_v) = std::mem::take(&mut val).split_at_mut(len);
            (idx, val) = (rest_i, rest_v);
            rows.push((i, v));
        }
        rows.par_iter_mut()
            .for_each_init(Vec::new, |keys: &mut Vec<u64>, (i, v)| {
                if i.windows(2).all(|w| w[0] < w[1]) {
                    return;
                }
                keys.clear();
                keys.extend(
                    i.iter()
                        .zip(v.iter())
                        .map(|(&c, &x)| ((c as u64) << 32) | x.to_bits() as u64),
                );
                keys.sort_unstable();
                for ((c, x), &k) in i.iter_mut().zip(v.iter_mut()).zip(keys.iter()) {
                    *c = (k >> 32) as u32;
                    *x = f32::from_bits(k as u32);
                }
            });
    }

    /// Rows `rows` (in the given order, repeats allowed) as a new matrix.
    pub fn select_rows(&self, rows: &[usize]) -> CsrMatrix {
        let mut out = CsrMatrix::empty(self.n_cols);
        for &r in rows {
            let (c, v) = self.row(r);
            out.push_row(c, v);
        }
        out
    }

    /// Columns `cols` (new order); indices are remapped and rows stay sorted if `cols` is increasing.
    pub fn select_cols(&self, cols: &[usize]) -> CsrMatrix {
        let mut map = vec![u32::MAX; self.n_cols];
        for (new, &old) in cols.iter().enumerate() {
            map[old] = new as u32;
        }
        let mut out = CsrMatrix::empty(cols.len());
        let mut c_buf = Vec::new();
        let mut v_buf = Vec::new();
        for r in 0..self.n_rows {
            c_buf.clear();
            v_buf.clear();
            let (c, v) = self.row(r);
            for (&ci, &vi) in c.iter().zip(v) {
                let m = map[ci as usize];
                if m != u32::MAX {
                    c_buf.push(m);
                    v_buf.push(vi);
                }
            }
            out.push_row(&c_buf, &v_buf);
        }
        out.sort_indices();
        out
    }

    pub fn to_dense(&self) -> DenseMatrix {
        let mut d = DenseMatrix::zeros(self.n_rows, self.n_cols);
        for r in 0..self.n_rows {
            let (c, v) = self.row(r);
            let row = d.row_mut(r);
            for (&ci, &vi) in c.iter().zip(v) {
                row[ci as usize] = vi;
            }
        }
        d
    }

    /// Stored entries per column (in parallel over slices of `indices`).
    pub fn col_counts(&self) -> Vec<u32> {
        use rayon::prelude::*;
        let zeros = || vec![0u32; self.n_cols];
        self.indices
            .par_chunks(1 << 20)
            .fold(zeros, |mut counts, idx| {
                idx.iter().for_each(|&c| counts[c as usize] += 1);
                counts
            })
            .reduce(zeros, |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            })
    }

    /// Transposes (CSR of the transpose, i.e. the CSC view of `self`).
    pub fn transpose(&self) -> CsrMatrix {
        let mut counts = vec![0u64; self.n_cols + 1];
        for (slot, &c) in counts[1..].iter_mut().zip(&self.col_counts()) {
            *slot = c as u64;
        }
        for i in 0..self.n_cols {
            counts[i + 1] += counts[i];
        }
        let indptr = counts.clone();
        let mut next = counts;
        let mut indices = vec![0u32; self.nnz()];
        let mut data = vec![0f32; self.nnz()];
        for r in 0..self.n_rows {
            let (c, v) = self.row(r);
            for (&ci, &vi) in c.iter().zip(v) {
                let slot = next[ci as usize] as usize;
                indices[slot] = r as u32;
                data[slot] = vi;
                next[ci as usize] += 1;
            }
        }
        CsrMatrix {
            n_rows: self.n_cols,
            n_cols: self.n_rows,
            indptr,
            indices,
            data,
        }
    }

    /// Sum of each row.
    pub fn row_sums(&self) -> Vec<f64> {
        (0..self.n_rows)
            .map(|r| self.row(r).1.iter().map(|&v| v as f64).sum())
            .collect()
    }
}

impl DenseMatrix {
    pub fn zeros(n_rows: usize, n_cols: usize) -> Self {
        Self {
            n_rows,
            n_cols,
            data: vec![0.0; n_rows * n_cols],
        }
    }

    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.n_cols..(r + 1) * self.n_cols]
    }

    pub fn row_mut(&mut self, r: usize) -> &mut [f32] {
        &mut self.data[r * self.n_cols..(r + 1) * self.n_cols]
    }

    pub fn get(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.n_cols + c]
    }

    pub fn select_rows(&self, rows: &[usize]) -> DenseMatrix {
        let mut data = Vec::with_capacity(rows.len() * self.n_cols);
        for &r in rows {
            data.extend_from_slice(self.row(r));
        }
        DenseMatrix {
            n_rows: rows.len(),
            n_cols: self.n_cols,
            data,
        }
    }

    pub fn select_cols(&self, cols: &[usize]) -> DenseMatrix {
        let mut data = Vec::with_capacity(self.n_rows * cols.len());
        for r in 0..self.n_rows {
            let row = self.row(r);
            data.extend(cols.iter().map(|&c| row[c]));
        }
        DenseMatrix {
            n_rows: self.n_rows,
            n_cols: cols.len(),
            data,
        }
    }

    /// Drops zeros (explicit zeros are not kept).
    pub fn to_csr(&self) -> CsrMatrix {
        use rayon::prelude::*;
        // Two parallel passes: non-zeros per row (-> indptr), then each block of rows fills its own
        // disjoint range of indices and data.
        const ROWS_PER_TASK: usize = 256;
        let g = self.n_cols;
        let counts: Vec<u64> = (0..self.n_rows)
            .into_par_iter()
            .map(|r| self.row(r).iter().filter(|&&v| v != 0.0).count() as u64)
            .collect();
        let mut indptr = Vec::with_capacity(self.n_rows + 1);
        indptr.push(0u64);
        for c in &counts {
            indptr.push(indptr[indptr.len() - 1] + c);
        }
        let nnz = indptr[self.n_rows] as usize;
        let mut indices = vec![0u32; nnz];
        let mut data = vec![0f32; nnz];
        let mut parts = Vec::with_capacity(self.n_rows.div_ceil(ROWS_PER_TASK));
        let (mut rest_i, mut rest_d) = (&mut indices[..], &mut data[..]);
        for r0 in (0..self.n_rows).step_by(ROWS_PER_TASK) {
            let r1 = (r0 + ROWS_PER_TASK).min(self.n_rows);
            let len = (indptr[r1] - indptr[r0]) as usize;
            let (bi, ri) = std::mem::take(&mut rest_i).split_at_mut(len);
            let (bd, rd) = std::mem::take(&mut rest_d).split_at_mut(len);
            (rest_i, rest_d) = (ri, rd);
            parts.push((r0..r1, bi, bd));
        }
        parts.into_par_iter().for_each(|(rows, bi, bd)| {
            let mut k = 0;
            for r in rows {
                for (c, &v) in self.row(r).iter().enumerate() {
                    if v != 0.0 {
                        bi[k] = c as u32;
                        bd[k] = v;
                        k += 1;
                    }
                }
            }
        });
        CsrMatrix {
            n_rows: self.n_rows,
            n_cols: g,
            indptr,
            indices,
            data,
        }
    }
}

impl Matrix {
    pub fn n_rows(&self) -> usize {
        match self {
            Matrix::Csr(m) => m.n_rows,
            Matrix::Dense(m) => m.n_rows,
        }
    }

    pub fn n_cols(&self) -> usize {
        match self {
            Matrix::Csr(m) => m.n_cols,
            Matrix::Dense(m) => m.n_cols,
        }
    }

    /// Stored values: the non-zeros of a sparse matrix, every value of a dense one.
    pub fn values(&self) -> &[f32] {
        match self {
            Matrix::Csr(m) => &m.data,
            Matrix::Dense(m) => &m.data,
        }
    }

    pub fn values_mut(&mut self) -> &mut [f32] {
        match self {
            Matrix::Csr(m) => &mut m.data,
            Matrix::Dense(m) => &mut m.data,
        }
    }

    /// Converts to CSR (zeros dropped from dense input).
    pub fn into_csr(self) -> CsrMatrix {
        match self {
            Matrix::Csr(m) => m,
            Matrix::Dense(m) => m.to_csr(),
        }
    }

    pub fn to_dense(&self) -> DenseMatrix {
        match self {
            Matrix::Csr(m) => m.to_dense(),
            Matrix::Dense(m) => m.clone(),
        }
    }

    pub fn select_rows(&self, rows: &[usize]) -> Matrix {
        match self {
            Matrix::Csr(m) => Matrix::Csr(m.select_rows(rows)),
            Matrix::Dense(m) => Matrix::Dense(m.select_rows(rows)),
        }
    }

    pub fn select_cols(&self, cols: &[usize]) -> Matrix {
        match self {
            Matrix::Csr(m) => Matrix::Csr(m.select_cols(cols)),
            Matrix::Dense(m) => Matrix::Dense(m.select_cols(cols)),
        }
    }

    /// Calls `f(row, dense_row)` for every row, densifying sparse rows into a reused buffer.
    pub fn for_each_dense_row(&self, mut f: impl FnMut(usize, &[f32])) {
        match self {
            Matrix::Dense(m) => (0..m.n_rows).for_each(|r| f(r, m.row(r))),
            Matrix::Csr(m) => {
                let mut buf = vec![0f32; m.n_cols];
                for r in 0..m.n_rows {
                    let (c, v) = m.row(r);
                    for (&ci, &vi) in c.iter().zip(v) {
                        buf[ci as usize] = vi;
                    }
                    f(r, &buf);
                    for &ci in c {
                        buf[ci as usize] = 0.0;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CsrMatrix {
        let mut m = CsrMatrix::empty(3);
        m.push_row(&[0, 2], &[1.0, 2.0]);
        m.push_row(&[], &[]);
        m.push_row(&[1], &[3.0]);
        m
    }

    #[test]
    fn transpose_twice_is_identity() {
        let m = sample();
        assert_eq!(m.transpose().transpose(), m);
        assert_eq!(m.transpose().to_dense().get(2, 0), 2.0);
    }

    #[test]
    fn dense_round_trip() {
        let m = sample();
        assert_eq!(m.to_dense().to_csr(), m);
    }

    /// More rows than one parallel task takes, empty rows among them: the blocks of rows must land in
    /// order, each in its own range of the arrays.
    #[test]
    fn parallel_to_csr_matches_row_by_row() {
        let mut m = CsrMatrix::empty(7);
        for r in 0..1000usize {
            let cols: Vec<u32> = (0..7u32)
                .filter(|&c| (r + c as usize * 3) % 5 == 0 && r % 11 != 0)
                .collect();
            let vals: Vec<f32> = cols.iter().map(|&c| (r * 7 + c as usize) as f32).collect();
            m.push_row(&cols, &vals);
        }
        assert_eq!(m.to_dense().to_csr(), m);
    }

    #[test]
    fn select_cols_reorders() {
        let m = sample().select_cols(&[2, 0]);
        assert_eq!(m.row(0), (&[0u32, 1][..], &[2.0f32, 1.0][..]));
    }

    #[test]
    fn sort_indices_sorts_unsorted_rows() {
        let mut m = CsrMatrix {
            n_rows: 1,
            n_cols: 3,
            indptr: vec![0, 2],
            indices: vec![2, 0],
            data: vec![5.0, 4.0],
        };
        m.sort_indices();
        assert_eq!(m.indices, vec![0, 2]);
        assert_eq!(m.data, vec![4.0, 5.0]);
    }
}
