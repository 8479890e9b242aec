//! Streaming CSR writer: `X` arrives in row blocks and is appended to resizable datasets, so files far
//! larger than memory can be produced (e.g. 2,000,000 synthetic cells).

use std::path::{Path, PathBuf};

use hdf5::{Dataset, File};

use super::elem::Src;
use super::write_io;
use super::{commit, temp_path};
use crate::{CsrMatrix, Frame, H5adError};

/// Elements per HDF5 chunk of `data`/`indices`: big enough for fast appends, small enough to read rows.
const CHUNK: usize = 1 << 16;

/// Writes an `.h5ad` whose CSR `X` arrives in row blocks, with bounded memory; `obs` is given at the
/// end (its length must equal the rows written). Atomic: nothing appears at `path` until `finish`.
pub struct H5adStreamWriter {
    path: PathBuf,
    tmp: PathBuf,
    // Options so that `finish` can close every HDF5 handle before the rename (the type has a Drop impl).
    file: Option<File>,
    data: Option<Dataset>,
    indices: Option<Dataset>,
    /// Row pointers are kept in memory (8 bytes per cell) and written at the end.
    indptr: Vec<i64>,
    n_cols: usize,
    nnz: usize,
    finished: bool,
}

impl H5adStreamWriter {
    pub fn create(path: &Path, var: &Frame) -> Result<Self, H5adError> {
        let src = Src { file: path };
        let tmp = temp_path(path);
        let file = File::create(&tmp).map_err(|e| src.hdf5("/", e))?;
        write_io::encoding_attrs(src, &file, "/", "anndata", "0.1.0")?;
        let x = write_io::new_group(src, &file, "X", "X")?;
        write_io::encoding_attrs(src, &x, "X", "csr_matrix", "0.1.0")?;
        let data = x
            .new_dataset::<f32>()
            .chunk(CHUNK)
            .shape(0..)
            .create("data")
            .map_err(|e| src.hdf5("X/data", e))?;
        let indices = x
            .new_dataset::<i32>()
            .chunk(CHUNK)
            .shape(0..)
            .create("indices")
            .map_err(|e| src.hdf5("X/indices", e))?;
        write_io::write_frame(src, &file, "var", var)?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
            data: Some(data),
            indices: Some(indices),
            indptr: vec![0],
            n_cols: var.len(),
            nnz: 0,
            finished: false,
        })
    }

    pub fn rows_written(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Appends a block of rows (its column count must equal the number of genes in `var`).
    pub fn write_rows(&mut self, rows: &CsrMatrix) -> Result<(), H5adError> {
        let src = Src { file: &self.path };
        if rows.n_cols != self.n_cols {
            return Err(src.invalid(
                "X",
                format!("row block has {} columns, var has {}", rows.n_cols, self.n_cols),
            ));
        }
        let add = rows.nnz();
        if add > 0 {
            let (a, b) = (self.nnz, self.nnz + add);
            let (Some(data), Some(indices)) = (&self.data, &self.indices) else {
                return Err(src.invalid("X", "stream already finished"));
            };
            data.resize(b).map_err(|e| src.hdf5("X/data", e))?;
            data.write_slice(&rows.data, a..b).map_err(|e| src.hdf5("X/data", e))?;
            let idx: Vec<i32> = rows.indices.iter().map(|&i| i as i32).collect();
            indices.resize(b).map_err(|e| src.hdf5("X/indices", e))?;
            indices.write_slice(&idx, a..b).map_err(|e| src.hdf5("X/indices", e))?;
        }
        let base = self.nnz as i64;
        self.indptr.extend(rows.indptr[1..].iter().map(|&p| base + p as i64));
        self.nnz += add;
        Ok(())
    }

    /// Writes obs, the remaining groups and `uns` strings, then renames the file into place.
    pub fn finish(mut self, obs: &Frame, uns: &[(String, String)]) -> Result<(), H5adError> {
        let path = self.path.clone();
        let src = Src { file: &path };
        let n_rows = self.rows_written();
        if obs.len() != n_rows {
            return Err(H5adError::LengthMismatch {
                file: path.clone(),
                path: "obs".into(),
                found: obs.len(),
                expected: n_rows,
                what: "obs must have one row per row written".into(),
            });
        }
        let file = self
            .file
            .take()
            .ok_or_else(|| src.invalid("X", "stream already finished"))?;
        {
            let x = file.group("X").map_err(|e| src.hdf5("X", e))?;
            write_io::write_1d(src, &x, "indptr", "X/indptr", &self.indptr)?;
            write_io::write_shape_attr(src, &x, "X", n_rows, self.n_cols)?;
            write_io::write_frame(src, &file, "obs", obs)?;
            for name in ["layers", "obsm", "varm", "obsp", "varp"] {
                write_io::dict_group(src, &file, name, name)?;
            }
            let u = write_io::dict_group(src, &file, "uns", "uns")?;
            for (k, v) in uns {
                write_io::write_uns_string(src, &u, k, &format!("uns/{k}"), v)?;
            }
        }
        // Every handle is closed before the rename, so the file is complete when it appears at `path`.
        self.data.take();
        self.indices.take();
        file.close().map_err(|e| src.hdf5("/", e))?;
        self.finished = true;
        commit(&self.tmp, &self.path)
    }
}

impl Drop for H5adStreamWriter {
    fn drop(&mut self) {
        if !self.finished {
            // An abandoned stream leaves nothing behind.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
