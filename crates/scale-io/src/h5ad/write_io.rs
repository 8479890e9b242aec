//! Writing elements with the encoding attributes anndata (>= 0.8) expects.

use std::str::FromStr;

use hdf5::types::VarLenUnicode;
use hdf5::{Dataset, Group, Location};

use super::elem::Src;
use crate::{Column, CsrMatrix, DenseMatrix, Frame, H5adError, Matrix};

fn vlen(src: Src, path: &str, s: &str) -> Result<VarLenUnicode, H5adError> {
    // Only an interior NUL byte can fail here; HDF5 strings cannot hold it.
    VarLenUnicode::from_str(s).map_err(|_| src.invalid(path, format!("string {s:?} contains a NUL byte")))
}

pub(crate) fn str_attr(src: Src, loc: &Location, path: &str, name: &str, value: &str) -> Result<(), H5adError> {
    let v = vlen(src, path, value)?;
    loc.new_attr::<VarLenUnicode>()
        .create(name)
        .and_then(|a| a.write_scalar(&v))
        .map_err(|e| src.hdf5(&format!("{path} (attribute {name})"), e))
}

pub(crate) fn encoding_attrs(src: Src, loc: &Location, path: &str, kind: &str, version: &str) -> Result<(), H5adError> {
    str_attr(src, loc, path, "encoding-type", kind)?;
    str_attr(src, loc, path, "encoding-version", version)
}

fn str_array_attr(src: Src, loc: &Location, path: &str, name: &str, values: &[String]) -> Result<(), H5adError> {
    let ctx = format!("{path} (attribute {name})");
    if values.is_empty() {
        // What anndata itself writes for an empty column order.
        return loc
            .new_attr::<f64>()
            .shape(0)
            .create(name)
            .map(|_| ())
            .map_err(|e| src.hdf5(&ctx, e));
    }
    let v: Vec<VarLenUnicode> = values.iter().map(|s| vlen(src, path, s)).collect::<Result<_, _>>()?;
    loc.new_attr::<VarLenUnicode>()
        .shape(v.len())
        .create(name)
        .and_then(|a| a.write_raw(&v))
        .map_err(|e| src.hdf5(&ctx, e))
}

pub(crate) fn new_group(src: Src, parent: &Group, name: &str, path: &str) -> Result<Group, H5adError> {
    parent.create_group(name).map_err(|e| src.hdf5(path, e))
}

pub(crate) fn dict_group(src: Src, parent: &Group, name: &str, path: &str) -> Result<Group, H5adError> {
    let g = new_group(src, parent, name, path)?;
    encoding_attrs(src, &g, path, "dict", "0.1.0")?;
    Ok(g)
}

pub(crate) fn write_1d<T: hdf5::H5Type>(
    src: Src,
    parent: &Group,
    name: &str,
    path: &str,
    data: &[T],
) -> Result<Dataset, H5adError> {
    parent
        .new_dataset_builder()
        .with_data(data)
        .create(name)
        .map_err(|e| src.hdf5(path, e))
}

fn write_strings(src: Src, parent: &Group, name: &str, path: &str, values: &[String]) -> Result<(), H5adError> {
    let v: Vec<VarLenUnicode> = values.iter().map(|s| vlen(src, path, s)).collect::<Result<_, _>>()?;
    let ds = write_1d(src, parent, name, path, &v)?;
    encoding_attrs(src, &ds, path, "string-array", "0.2.0")
}

pub(crate) fn write_frame(src: Src, root: &Group, path: &str, frame: &Frame) -> Result<(), H5adError> {
    let g = new_group(src, root, path, path)?;
    encoding_attrs(src, &g, path, "dataframe", "0.2.0")?;
    let index_name = if frame.index_name.is_empty() {
        "_index"
    } else {
        frame.index_name.as_str()
    };
    str_attr(src, &g, path, "_index", index_name)?;
    let names: Vec<String> = frame.columns.iter().map(|(n, _)| n.clone()).collect();
    str_array_attr(src, &g, path, "column-order", &names)?;
    write_strings(src, &g, index_name, &format!("{path}/{index_name}"), &frame.index)?;
    for (name, col) in &frame.columns {
        let cpath = format!("{path}/{name}");
        if col.len() != frame.index.len() {
            return Err(H5adError::LengthMismatch {
                file: src.file.to_path_buf(),
                path: cpath,
                found: col.len(),
                expected: frame.index.len(),
                what: "column length must equal the index length".into(),
            });
        }
        match col {
            Column::Categorical {
                codes,
                categories,
                ordered,
            } => {
                let cg = new_group(src, &g, name, &cpath)?;
                encoding_attrs(src, &cg, &cpath, "categorical", "0.2.0")?;
                cg.new_attr::<bool>()
                    .create("ordered")
                    .and_then(|a| a.write_scalar(ordered))
                    .map_err(|e| src.hdf5(&cpath, e))?;
                write_strings(src, &cg, "categories", &format!("{cpath}/categories"), categories)?;
                let kpath = format!("{cpath}/codes");
                // pandas picks the narrowest signed code type; mirror it to keep files small.
                let ds = if categories.len() < i8::MAX as usize {
                    let c: Vec<i8> = codes.iter().map(|&c| c as i8).collect();
                    write_1d(src, &cg, "codes", &kpath, &c)?
                } else if categories.len() < i16::MAX as usize {
                    let c: Vec<i16> = codes.iter().map(|&c| c as i16).collect();
                    write_1d(src, &cg, "codes", &kpath, &c)?
                } else {
                    write_1d(src, &cg, "codes", &kpath, codes)?
                };
                encoding_attrs(src, &ds, &kpath, "array", "0.2.0")?;
            }
            Column::String(v) => write_strings(src, &g, name, &cpath, v)?,
            Column::Float(v) => {
                let ds = write_1d(src, &g, name, &cpath, v)?;
                encoding_attrs(src, &ds, &cpath, "array", "0.2.0")?;
            }
            Column::Int(v) => {
                let ds = write_1d(src, &g, name, &cpath, v)?;
                encoding_attrs(src, &ds, &cpath, "array", "0.2.0")?;
            }
            Column::Bool(v) => {
                let ds = write_1d(src, &g, name, &cpath, v)?;
                encoding_attrs(src, &ds, &cpath, "array", "0.2.0")?;
            }
        }
    }
    Ok(())
}

pub(crate) fn write_shape_attr(src: Src, g: &Group, path: &str, n_rows: usize, n_cols: usize) -> Result<(), H5adError> {
    g.new_attr::<i64>()
        .shape(2)
        .create("shape")
        .and_then(|a| a.write_raw(&[n_rows as i64, n_cols as i64]))
        .map_err(|e| src.hdf5(&format!("{path} (attribute shape)"), e))
}

pub(crate) fn write_csr(src: Src, parent: &Group, name: &str, path: &str, m: &CsrMatrix) -> Result<(), H5adError> {
    let g = new_group(src, parent, name, path)?;
    encoding_attrs(src, &g, path, "csr_matrix", "0.1.0")?;
    write_shape_attr(src, &g, path, m.n_rows, m.n_cols)?;
    write_1d(src, &g, "data", &format!("{path}/data"), &m.data)?;
    let indices: Vec<i32> = m.indices.iter().map(|&i| i as i32).collect();
    write_1d(src, &g, "indices", &format!("{path}/indices"), &indices)?;
    let indptr: Vec<i64> = m.indptr.iter().map(|&i| i as i64).collect();
    write_1d(src, &g, "indptr", &format!("{path}/indptr"), &indptr)?;
    Ok(())
}

pub(crate) fn write_dense(src: Src, parent: &Group, name: &str, path: &str, m: &DenseMatrix) -> Result<(), H5adError> {
    let arr = ndarray::ArrayView2::from_shape((m.n_rows, m.n_cols), &m.data)
        .map_err(|e| src.invalid(path, format!("dense matrix data does not match its shape: {e}")))?;
    let ds = parent
        .new_dataset_builder()
        .with_data(arr)
        .create(name)
        .map_err(|e| src.hdf5(path, e))?;
    encoding_attrs(src, &ds, path, "array", "0.2.0")
}

pub(crate) fn write_matrix(src: Src, parent: &Group, name: &str, path: &str, m: &Matrix) -> Result<(), H5adError> {
    match m {
        Matrix::Csr(c) => write_csr(src, parent, name, path, c),
        Matrix::Dense(d) => write_dense(src, parent, name, path, d),
    }
}

pub(crate) fn write_uns_string(src: Src, parent: &Group, name: &str, path: &str, value: &str) -> Result<(), H5adError> {
    let v = vlen(src, path, value)?;
    let ds = parent
        .new_dataset::<VarLenUnicode>()
        .create(name)
        .and_then(|d| d.write_scalar(&v).map(|_| d))
        .map_err(|e| src.hdf5(path, e))?;
    encoding_attrs(src, &ds, path, "string", "0.2.0")
}
