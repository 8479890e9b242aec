//! AnnData `.h5ad` on HDF5. One concept per file: element encodings, dataframes, matrices, the reader,
//! the whole-file writer and the streaming writer.

mod elem;
mod frame_io;
mod matrix_io;
mod plain;
mod stream;
mod write_io;

use std::ops::Range;
use std::path::{Path, PathBuf};

use hdf5::{File, LocationType};

use crate::{AnnData, DenseMatrix, Frame, H5adError, Matrix};
use elem::{read_scalar_string, Src};

pub use stream::H5adStreamWriter;

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
    file: File,
    n_obs: usize,
    n_vars: usize,
}

impl H5adReader {
    /// Opens the file and reads the shape (from `X`, else from the obs/var indexes).
    pub fn open(path: &Path) -> Result<Self, H5adError> {
        if let Err(source) = std::fs::metadata(path) {
            return Err(H5adError::Io {
                file: path.to_path_buf(),
                source,
            });
        }
        // Read-only opens take no lock. HDF5 locks with flock(), and its descriptors are not close-on-exec,
        // so any child process spawned while some file is open for writing (a test harness running
        // `python` or `scale` concurrently) inherits that lock and keeps it for its whole life; a later
        // read of the finished file then failed with EAGAIN. Our writers never expose a partial file
        // (temp file + rename), so readers gain nothing from the lock.
        let file = File::with_options()
            .with_fapl(|fapl| fapl.file_locking(false))
            .open(path)
            .map_err(|e| H5adError::NotHdf5 {
                file: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let src = Src { file: path };
        let (n_obs, n_vars) = if file.link_exists("X") {
            let info = matrix_io::matrix_info(src, &file, "X")?;
            (info.n_rows, info.n_cols)
        } else {
            // X may legitimately be absent (embedding-only files); fall back to the dataframe indexes.
            let obs = frame_io::read_frame(src, &file, "obs", None)?;
            let var = frame_io::read_frame(src, &file, "var", None)?;
            (obs.len(), var.len())
        };
        Ok(Self {
            path: path.to_path_buf(),
            file,
            n_obs,
            n_vars,
        })
    }

    fn src(&self) -> Src<'_> {
        Src { file: &self.path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn n_obs(&self) -> usize {
        self.n_obs
    }

    pub fn n_vars(&self) -> usize {
        self.n_vars
    }

    pub fn x_info(&self) -> Result<MatrixInfo, H5adError> {
        matrix_io::matrix_info(self.src(), &self.file, "X")
    }

    pub fn read_obs(&self) -> Result<Frame, H5adError> {
        frame_io::read_frame(self.src(), &self.file, "obs", Some(self.n_obs))
    }

    pub fn read_var(&self) -> Result<Frame, H5adError> {
        frame_io::read_frame(self.src(), &self.file, "var", Some(self.n_vars))
    }

    pub fn read_x(&self) -> Result<Matrix, H5adError> {
        matrix_io::read_matrix(self.src(), &self.file, "X", None)
    }

    /// [`read_x`](Self::read_x), written into the buffers of `spare` (a matrix no longer needed) where
    /// they are large enough: reading a second file of the same size then touches no fresh memory.
    pub fn read_x_reusing(&self, spare: Matrix) -> Result<Matrix, H5adError> {
        matrix_io::read_matrix_reusing(self.src(), &self.file, "X", None, Some(spare))
    }

    /// Rows `rows` of `X` without reading the rest (CSC falls back to a full read).
    pub fn read_x_rows(&self, rows: Range<usize>) -> Result<Matrix, H5adError> {
        matrix_io::read_matrix(self.src(), &self.file, "X", Some(rows))
    }

    fn keys_of(&self, group: &str) -> Result<Vec<String>, H5adError> {
        if !self.file.link_exists(group) {
            return Ok(Vec::new());
        }
        let g = self.file.group(group).map_err(|e| self.src().hdf5(group, e))?;
        g.member_names().map_err(|e| self.src().hdf5(group, e))
    }

    pub fn layer_keys(&self) -> Result<Vec<String>, H5adError> {
        self.keys_of("layers")
    }

    pub fn layer_info(&self, name: &str) -> Result<MatrixInfo, H5adError> {
        matrix_io::matrix_info(self.src(), &self.file, &format!("layers/{name}"))
    }

    pub fn read_layer(&self, name: &str) -> Result<Matrix, H5adError> {
        self.read_checked(&format!("layers/{name}"), None)
    }

    pub fn read_layer_rows(&self, name: &str, rows: Range<usize>) -> Result<Matrix, H5adError> {
        self.read_checked(&format!("layers/{name}"), Some(rows))
    }

    pub fn obsm_keys(&self) -> Result<Vec<String>, H5adError> {
        self.keys_of("obsm")
    }

    pub fn obsm_info(&self, name: &str) -> Result<MatrixInfo, H5adError> {
        matrix_io::matrix_info(self.src(), &self.file, &format!("obsm/{name}"))
    }

    /// An `obsm` entry as a dense matrix (sparse entries are densified).
    pub fn read_obsm(&self, name: &str) -> Result<DenseMatrix, H5adError> {
        Ok(self.read_checked(&format!("obsm/{name}"), None)?.to_dense())
    }

    pub fn read_obsm_rows(&self, name: &str, rows: Range<usize>) -> Result<DenseMatrix, H5adError> {
        Ok(self.read_checked(&format!("obsm/{name}"), Some(rows))?.to_dense())
    }

    /// Reads a per-cell matrix and checks it has one row per cell.
    fn read_checked(&self, path: &str, rows: Option<Range<usize>>) -> Result<Matrix, H5adError> {
        let info = matrix_io::matrix_info(self.src(), &self.file, path)?;
        if info.n_rows != self.n_obs {
            return Err(H5adError::LengthMismatch {
                file: self.path.clone(),
                path: path.to_string(),
                found: info.n_rows,
                expected: self.n_obs,
                what: "one row per cell".into(),
            });
        }
        matrix_io::read_matrix(self.src(), &self.file, path, rows)
    }

    /// Top-level `uns` entries that are strings (other entries are skipped).
    pub fn read_uns_strings(&self) -> Result<Vec<(String, String)>, H5adError> {
        let mut out = Vec::new();
        for key in self.keys_of("uns")? {
            let path = format!("uns/{key}");
            let is_ds = matches!(self.file.loc_type_by_name(&path), Ok(LocationType::Dataset));
            if !is_ds {
                continue;
            }
            let ds = self.file.dataset(&path).map_err(|e| self.src().hdf5(&path, e))?;
            let enc = self.src().encoding(&ds, &path)?;
            if enc.as_deref() == Some("string") {
                out.push((key, read_scalar_string(self.src(), &ds, &path)?));
            }
        }
        Ok(out)
    }

    /// The whole file.
    pub fn read_all(&self) -> Result<AnnData, H5adError> {
        let obs = self.read_obs()?;
        let var = self.read_var()?;
        let x = if self.file.link_exists("X") {
            self.read_x()?
        } else {
            Matrix::Dense(DenseMatrix {
                n_rows: self.n_obs,
                n_cols: 0,
                data: Vec::new(),
            })
        };
        let mut layers = Vec::new();
        for k in self.layer_keys()? {
            let m = self.read_layer(&k)?;
            layers.push((k, m));
        }
        let mut obsm = Vec::new();
        for k in self.obsm_keys()? {
            let path = format!("obsm/{k}");
            // obsm may hold dataframes too; keep only matrices.
            if matrix_io::matrix_info(self.src(), &self.file, &path).is_ok() {
                obsm.push((k.clone(), self.read_obsm(&k)?));
            }
        }
        let uns = self.read_uns_strings()?;
        Ok(AnnData {
            x,
            obs,
            var,
            layers,
            obsm,
            uns,
        })
    }
}

/// Reads the whole file into memory.
pub fn read_h5ad(path: &Path) -> Result<AnnData, H5adError> {
    H5adReader::open(path)?.read_all()
}

/// A sibling temp path for atomic writes.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out.h5ad".into());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

pub(crate) fn commit(tmp: &Path, path: &Path) -> Result<(), H5adError> {
    std::fs::rename(tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(tmp);
        H5adError::Io {
            file: path.to_path_buf(),
            source,
        }
    })
}

/// Writes `adata` atomically (temp file in the same directory, then rename).
pub fn write_h5ad(path: &Path, adata: &AnnData) -> Result<(), H5adError> {
    let tmp = temp_path(path);
    let res = write_into(&tmp, path, adata);
    match res {
        Ok(()) => commit(&tmp, path),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn write_into(tmp: &Path, path: &Path, adata: &AnnData) -> Result<(), H5adError> {
    let src = Src { file: path };
    let (n, g) = (adata.x.n_rows(), adata.x.n_cols());
    if adata.obs.len() != n {
        return Err(H5adError::LengthMismatch {
            file: path.to_path_buf(),
            path: "obs".into(),
            found: adata.obs.len(),
            expected: n,
            what: "obs must have one row per row of X".into(),
        });
    }
    if adata.var.len() != g {
        return Err(H5adError::LengthMismatch {
            file: path.to_path_buf(),
            path: "var".into(),
            found: adata.var.len(),
            expected: g,
            what: "var must have one row per column of X".into(),
        });
    }
    let file = File::create(tmp).map_err(|e| src.hdf5("/", e))?;
    write_io::encoding_attrs(src, &file, "/", "anndata", "0.1.0")?;
    write_io::write_matrix(src, &file, "X", "X", &adata.x)?;
    write_io::write_frame(src, &file, "obs", &adata.obs)?;
    write_io::write_frame(src, &file, "var", &adata.var)?;
    let layers = write_io::dict_group(src, &file, "layers", "layers")?;
    for (k, m) in &adata.layers {
        let p = format!("layers/{k}");
        if m.n_rows() != n || m.n_cols() != g {
            return Err(src.invalid(&p, format!("layer is {}x{}, X is {n}x{g}", m.n_rows(), m.n_cols())));
        }
        write_io::write_matrix(src, &layers, k, &p, m)?;
    }
    let obsm = write_io::dict_group(src, &file, "obsm", "obsm")?;
    for (k, m) in &adata.obsm {
        let p = format!("obsm/{k}");
        if m.n_rows != n {
            return Err(src.invalid(&p, format!("obsm entry has {} rows, X has {n}", m.n_rows)));
        }
        write_io::write_dense(src, &obsm, k, &p, m)?;
    }
    for name in ["varm", "obsp", "varp"] {
        write_io::dict_group(src, &file, name, name)?;
    }
    let uns = write_io::dict_group(src, &file, "uns", "uns")?;
    for (k, v) in &adata.uns {
        write_io::write_uns_string(src, &uns, k, &format!("uns/{k}"), v)?;
    }
    file.close().map_err(|e| src.hdf5("/", e))
}
