//! Reading matrices: `csr_matrix`, `csc_matrix` groups and dense `array` datasets, whole or by rows.

use std::ops::Range;

use hdf5::types::{IntSize, TypeDescriptor};
use hdf5::{Dataset, Group, LocationType};
use rayon::prelude::*;

use super::elem::{dtype_name, numeric_kind, read_numeric, Src};
use super::plain::{cast_vec, read_plain_reusing};
use super::{MatrixEncoding, MatrixInfo};
use crate::{CsrMatrix, DenseMatrix, H5adError, Matrix};

/// Describes the matrix at `path` (relative to the file root) without reading its values.
pub(crate) fn matrix_info(src: Src, root: &Group, path: &str) -> Result<MatrixInfo, H5adError> {
    if !root.link_exists(path) {
        return Err(src.missing(path));
    }
    match root.loc_type_by_name(path).map_err(|e| src.hdf5(path, e))? {
        LocationType::Dataset => {
            let ds = root.dataset(path).map_err(|e| src.hdf5(path, e))?;
            let shape = ds.shape();
            if shape.len() != 2 {
                return Err(src.invalid(path, format!("expected a 2-D array, found shape {shape:?}")));
            }
            Ok(MatrixInfo {
                encoding: MatrixEncoding::Dense,
                n_rows: shape[0],
                n_cols: shape[1],
                dtype: dtype_name(&ds),
                n_stored: shape[0] * shape[1],
            })
        }
        LocationType::Group => {
            let g = root.group(path).map_err(|e| src.hdf5(path, e))?;
            let enc = src.encoding(&g, path)?.unwrap_or_default();
            let encoding = match enc.as_str() {
                "csr_matrix" => MatrixEncoding::Csr,
                "csc_matrix" => MatrixEncoding::Csc,
                other => {
                    return Err(H5adError::UnknownEncoding {
                        file: src.file.to_path_buf(),
                        path: path.to_string(),
                        found: other.to_string(),
                        expected: "csr_matrix, csc_matrix or a dense array".into(),
                    })
                }
            };
            let shape = src.int_array_attr(&g, "shape", path)?;
            if shape.len() != 2 || shape.iter().any(|&s| s < 0) {
                return Err(src.invalid(
                    path,
                    format!("`shape` attribute must be two non-negative ints, found {shape:?}"),
                ));
            }
            let data = src.dataset(&g, "data", &format!("{path}/data"))?;
            Ok(MatrixInfo {
                encoding,
                n_rows: shape[0] as usize,
                n_cols: shape[1] as usize,
                dtype: dtype_name(&data),
                n_stored: data.size(),
            })
        }
        other => Err(src.invalid(path, format!("expected a matrix, found an HDF5 {other:?}"))),
    }
}

/// Reads the matrix at `path`, optionally only rows `rows` (CSC input is read whole, then sliced).
pub(crate) fn read_matrix(src: Src, root: &Group, path: &str, rows: Option<Range<usize>>) -> Result<Matrix, H5adError> {
    read_matrix_reusing(src, root, path, rows, None)
}

/// [`read_matrix`], a CSR result written into `spare`'s buffers where they are large enough (see
/// [`super::plain::read_plain_reusing`]).
pub(crate) fn read_matrix_reusing(
    src: Src,
    root: &Group,
    path: &str,
    rows: Option<Range<usize>>,
    spare: Option<Matrix>,
) -> Result<Matrix, H5adError> {
    let info = matrix_info(src, root, path)?;
    let rows = match rows {
        Some(r) if r.start > r.end || r.end > info.n_rows => {
            return Err(src.invalid(
                path,
                format!("requested rows {}..{} of {}", r.start, r.end, info.n_rows),
            ))
        }
        Some(r) => r,
        None => 0..info.n_rows,
    };
    match info.encoding {
        MatrixEncoding::Dense => {
            let ds = root.dataset(path).map_err(|e| src.hdf5(path, e))?;
            let data: Vec<f32> = if rows.is_empty() || info.n_cols == 0 {
                Vec::new()
            } else if matches!(dtype_name(&ds).as_str(), "bool") {
                return Err(src.invalid(path, "boolean matrices are not expression data"));
            } else {
                ds.read_slice::<f32, _, ndarray::Ix2>((rows.clone(), ..))
                    .map_err(|e| src.hdf5(path, e))?
                    .into_raw_vec_and_offset()
                    .0
            };
            Ok(Matrix::Dense(DenseMatrix {
                n_rows: rows.len(),
                n_cols: info.n_cols,
                data,
            }))
        }
        MatrixEncoding::Csr => {
            let g = root.group(path).map_err(|e| src.hdf5(path, e))?;
            let spare = match spare {
                Some(Matrix::Csr(m)) => Some(m),
                _ => None,
            };
            read_compressed(src, &g, path, info.n_rows, info.n_cols, rows, spare).map(Matrix::Csr)
        }
        MatrixEncoding::Csc => {
            let g = root.group(path).map_err(|e| src.hdf5(path, e))?;
            // CSC of (rows × cols) = CSR of its transpose (cols × rows).
            let t = read_compressed(src, &g, path, info.n_cols, info.n_rows, 0..info.n_cols, None)?;
            let mut m = t.transpose();
            if rows != (0..info.n_rows) {
                let sel: Vec<usize> = rows.collect();
                m = m.select_rows(&sel);
            }
            Ok(Matrix::Csr(m))
        }
    }
}

/// Elements per read when sparse indices need a wider intermediate type.
const INDEX_READ_CHUNK: usize = 1 << 22;

/// Reads `range` of a sparse `indices` array as `u32`, checking every index is in `0..n_minor`.
/// int32 indices (what anndata writes) are read and reinterpreted in place; other widths are read
/// in chunks through int64, so no full-size wider copy is ever held (it once doubled the peak
/// memory of reading a large CSR file).
fn read_indices(
    src: Src,
    ds: &Dataset,
    path: &str,
    range: Range<usize>,
    n_minor: usize,
    reuse: Vec<u32>,
) -> Result<Vec<u32>, H5adError> {
    let check = |c: i64, k: usize| {
        if c < 0 || c as usize >= n_minor {
            Err(src.invalid(path, format!("index {c} at element {k} is outside 0..{n_minor}")))
        } else {
            Ok(c as u32)
        }
    };
    if matches!(numeric_kind(src, ds, path)?, TypeDescriptor::Integer(IntSize::U4)) {
        let raw: Vec<i32> = match read_plain_reusing(src, ds, path, range.clone(), cast_vec(reuse))? {
            Some(raw) => raw,
            None => read_numeric(src, ds, path, Some(range.clone()))?,
        };
        // in parallel blocks, each a plain loop the compiler vectorises; the first bad block names
        // the first bad index
        const BLOCK: usize = 1 << 16;
        let bad = |c: i32| c < 0 || c as usize >= n_minor;
        if let Some(b) = raw
            .par_chunks(BLOCK)
            .position_first(|block| block.iter().fold(false, |any, &c| any | bad(c)))
        {
            let k = b * BLOCK + raw[b * BLOCK..].iter().position(|&c| bad(c)).unwrap_or(0);
            check(raw[k] as i64, range.start + k)?;
        }
        // checked non-negative: the same values as u32
        return Ok(cast_vec(raw));
    }
    let mut out = Vec::with_capacity(range.len());
    let mut at = range.start;
    while at < range.end {
        let end = (at + INDEX_READ_CHUNK).min(range.end);
        let part: Vec<i64> = read_numeric(src, ds, path, Some(at..end))?;
        for (k, &c) in part.iter().enumerate() {
            out.push(check(c, at + k)?);
        }
        at = end;
    }
    Ok(out)
}

/// Reads major-axis slices `rows` of a compressed sparse group and validates its structure.
fn read_compressed(
    src: Src,
    g: &Group,
    path: &str,
    n_major: usize,
    n_minor: usize,
    rows: Range<usize>,
    spare: Option<CsrMatrix>,
) -> Result<CsrMatrix, H5adError> {
    let p_indptr = format!("{path}/indptr");
    let p_indices = format!("{path}/indices");
    let p_data = format!("{path}/data");
    let indptr_ds = src.dataset(g, "indptr", &p_indptr)?;
    if indptr_ds.size() != n_major + 1 {
        return Err(H5adError::LengthMismatch {
            file: src.file.to_path_buf(),
            path: p_indptr,
            found: indptr_ds.size(),
            expected: n_major + 1,
            what: "indptr must have one entry per major-axis row plus one".into(),
        });
    }
    let indptr: Vec<u64> = read_numeric::<i64>(src, &indptr_ds, &p_indptr, Some(rows.start..rows.end + 1))?
        .into_iter()
        .map(|v| v.max(0) as u64)
        .collect();
    let indices_ds = src.dataset(g, "indices", &p_indices)?;
    let data_ds = src.dataset(g, "data", &p_data)?;
    let (lo, hi) = (indptr[0] as usize, *indptr.last().unwrap_or(&0) as usize);
    if indptr.windows(2).any(|w| w[1] < w[0]) {
        return Err(src.invalid(&p_indptr, "indptr must be non-decreasing"));
    }
    if hi > indices_ds.size() || hi > data_ds.size() {
        return Err(src.invalid(
            &p_indptr,
            format!(
                "indptr points to element {hi} but indices has {} and data has {} elements (truncated file?)",
                indices_ds.size(),
                data_ds.size()
            ),
        ));
    }
    let (spare_indices, spare_data) = spare.map(|m| (m.indices, m.data)).unwrap_or_default();
    let indices = read_indices(src, &indices_ds, &p_indices, lo..hi, n_minor, spare_indices)?;
    let data: Vec<f32> = match numeric_kind(src, &data_ds, &p_data)? {
        TypeDescriptor::Float(hdf5::types::FloatSize::U4) => {
            match read_plain_reusing(src, &data_ds, &p_data, lo..hi, spare_data)? {
                Some(data) => data,
                None => read_numeric(src, &data_ds, &p_data, Some(lo..hi))?,
            }
        }
        _ => read_numeric(src, &data_ds, &p_data, Some(lo..hi))?,
    };
    let indptr: Vec<u64> = indptr.iter().map(|&p| p - lo as u64).collect();
    let mut m = CsrMatrix {
        n_rows: rows.len(),
        n_cols: n_minor,
        indptr,
        indices,
        data,
    };
    m.sort_indices();
    Ok(m)
}
