//! AnnData `.h5ad` on HDF5. One concept per file: element encodings, dataframes, matrices, the reader,
//! the whole-file writer and the streaming writer.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::{AnnData, CsrMatrix, DenseMatrix, Frame, H5adError, Matrix};

/// How a matrix is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatrixEncoding {
    Csr,
    Csc,
    Dense,
}

/// Metadata of a stored matrix, read without loading values.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixInfo {
    pub encoding: MatrixEncoding,
    pub n_rows: usize,
    pub n_cols: usize,
    /// Source dtype as numpy names it (`float32`, `int32`, ...).
    pub dtype: String,
    /// Stored values (nnz for sparse, rows × cols for dense).
    pub n_stored: usize,
}

/// Reads an `.h5ad` file: metadata first, values on demand.
pub struct H5adReader {
    path: PathBuf,
}

impl H5adReader {
    pub fn open(path: &Path) -> Result<Self, H5adError> {
        Ok(Self {
            path: path.to_path_buf(),
        })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn n_obs(&self) -> usize {
        todo!()
    }
    pub fn n_vars(&self) -> usize {
        todo!()
    }
    pub fn x_info(&self) -> Result<MatrixInfo, H5adError> {
        todo!()
    }
    pub fn read_obs(&self) -> Result<Frame, H5adError> {
        todo!()
    }
    pub fn read_var(&self) -> Result<Frame, H5adError> {
        todo!()
    }
    pub fn read_x(&self) -> Result<Matrix, H5adError> {
        todo!()
    }
    /// Rows `rows` of `X` without reading the rest (CSC falls back to a full read).
    pub fn read_x_rows(&self, _rows: Range<usize>) -> Result<Matrix, H5adError> {
        todo!()
    }
    pub fn layer_keys(&self) -> Result<Vec<String>, H5adError> {
        todo!()
    }
    pub fn layer_info(&self, _name: &str) -> Result<MatrixInfo, H5adError> {
        todo!()
    }
    pub fn read_layer(&self, _name: &str) -> Result<Matrix, H5adError> {
        todo!()
    }
    pub fn read_layer_rows(&self, _name: &str, _rows: Range<usize>) -> Result<Matrix, H5adError> {
        todo!()
    }
    pub fn obsm_keys(&self) -> Result<Vec<String>, H5adError> {
        todo!()
    }
    pub fn read_obsm(&self, _name: &str) -> Result<DenseMatrix, H5adError> {
        todo!()
    }
    pub fn read_obsm_rows(&self, _name: &str, _rows: Range<usize>) -> Result<DenseMatrix, H5adError> {
        todo!()
    }
    /// The whole file.
    pub fn read_all(&self) -> Result<AnnData, H5adError> {
        todo!()
    }
}

/// Reads the whole file into memory.
pub fn read_h5ad(path: &Path) -> Result<AnnData, H5adError> {
    H5adReader::open(path)?.read_all()
}

/// Writes `adata` atomically (temp file in the same directory, then rename).
pub fn write_h5ad(_path: &Path, _adata: &AnnData) -> Result<(), H5adError> {
    todo!()
}

/// Writes an `.h5ad` whose CSR `X` arrives in row blocks, with bounded memory; `obs` is given at the
/// end (its length must equal the rows written). Atomic: nothing appears at `path` until `finish`.
pub struct H5adStreamWriter {
    _path: PathBuf,
}

impl H5adStreamWriter {
    pub fn create(_path: &Path, _var: &Frame) -> Result<Self, H5adError> {
        todo!()
    }
    pub fn write_rows(&mut self, _rows: &CsrMatrix) -> Result<(), H5adError> {
        todo!()
    }
    pub fn finish(self, _obs: &Frame, _uns: &[(String, String)]) -> Result<(), H5adError> {
        todo!()
    }
}
