//! `dataframe` groups (obs/var): index, categorical/string/numeric/bool/nullable columns.

use hdf5::types::TypeDescriptor;
use hdf5::{Group, LocationType};

use super::elem::{read_bool, read_numeric, read_strings, Src};
use crate::{Column, Frame, H5adError};

/// Reads the dataframe at `path` (e.g. `obs`), checking every column has `expected_len` rows when given.
pub(crate) fn read_frame(src: Src, root: &Group, path: &str, expected_len: Option<usize>) -> Result<Frame, H5adError> {
    let g = src.group(root, path, path)?;
    let enc = src.encoding(&g, path)?;
    if let Some(enc) = &enc {
        if enc != "dataframe" {
            return Err(H5adError::UnknownEncoding {
                file: src.file.to_path_buf(),
                path: path.into(),
                found: enc.clone(),
                expected: "dataframe".into(),
            });
        }
    }
    let index_name = src
        .str_attr(&g, "_index", path)?
        .ok_or_else(|| src.missing(&format!("{path} (attribute _index)")))?;
    let index_path = format!("{path}/{index_name}");
    let index = read_strings(src, &src.dataset(&g, &index_name, &index_path)?, &index_path)?;
    if let Some(n) = expected_len {
        if index.len() != n {
            return Err(H5adError::LengthMismatch {
                file: src.file.to_path_buf(),
                path: index_path,
                found: index.len(),
                expected: n,
                what: "the index must have one entry per row of X".into(),
            });
        }
    }
    let order = src.str_array_attr(&g, "column-order", path)?;
    let mut columns = Vec::with_capacity(order.len());
    for name in order {
        let cpath = format!("{path}/{name}");
        let col = read_column(src, &g, &name, &cpath)?;
        if col.len() != index.len() {
            return Err(H5adError::LengthMismatch {
                file: src.file.to_path_buf(),
                path: cpath,
                found: col.len(),
                expected: index.len(),
                what: format!("every column of {path} must match its index length"),
            });
        }
        columns.push((name, col));
    }
    Ok(Frame {
        index_name,
        index,
        columns,
    })
}

fn read_column(src: Src, g: &Group, name: &str, path: &str) -> Result<Column, H5adError> {
    if !g.link_exists(name) {
        return Err(src.missing(path));
    }
    match g.loc_type_by_name(name).map_err(|e| src.hdf5(path, e))? {
        LocationType::Dataset => {
            let ds = g.dataset(name).map_err(|e| src.hdf5(path, e))?;
            let desc = ds
                .dtype()
                .and_then(|d| d.to_descriptor())
                .map_err(|e| src.hdf5(path, e))?;
            if ds.ndim() != 1 {
                return Err(src.invalid(path, format!("expected a 1-D column, found shape {:?}", ds.shape())));
            }
            Ok(match desc {
                TypeDescriptor::Float(_) => Column::Float(read_numeric(src, &ds, path, None)?),
                TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
                    Column::Int(read_numeric(src, &ds, path, None)?)
                }
                TypeDescriptor::Boolean | TypeDescriptor::Enum(_) => Column::Bool(read_bool(src, &ds, path)?),
                _ => Column::String(read_strings(src, &ds, path)?),
            })
        }
        LocationType::Group => {
            let cg = g.group(name).map_err(|e| src.hdf5(path, e))?;
            let enc = src.encoding(&cg, path)?.unwrap_or_default();
            match enc.as_str() {
                "categorical" => read_categorical(src, &cg, path),
                "nullable-integer" | "nullable-boolean" => {
                    let vpath = format!("{path}/values");
                    let values: Vec<f64> = read_numeric(src, &src.dataset(&cg, "values", &vpath)?, &vpath, None)?;
                    let mask = read_mask(src, &cg, path)?;
                    Ok(Column::Float(
                        values
                            .iter()
                            .zip(&mask)
                            .map(|(&v, &m)| if m { f64::NAN } else { v })
                            .collect(),
                    ))
                }
                "nullable-string-array" => {
                    let vpath = format!("{path}/values");
                    let values = read_strings(src, &src.dataset(&cg, "values", &vpath)?, &vpath)?;
                    let mask = read_mask(src, &cg, path)?;
                    // Missing strings become a categorical code of -1 so "missing" stays distinguishable.
                    let mut cats: Vec<String> = values.clone();
                    cats.sort();
                    cats.dedup();
                    let codes = values
                        .iter()
                        .zip(&mask)
                        .map(|(v, &m)| {
                            if m {
                                -1
                            } else {
                                cats.binary_search(v).map(|i| i as i32).unwrap_or(-1)
                            }
                        })
                        .collect();
                    Ok(Column::Categorical {
                        codes,
                        categories: cats,
                        ordered: false,
                    })
                }
                other => Err(H5adError::UnknownEncoding {
                    file: src.file.to_path_buf(),
                    path: path.into(),
                    found: other.into(),
                    expected: "categorical, nullable-integer, nullable-boolean, nullable-string-array or an array"
                        .into(),
                }),
            }
        }
        other => Err(src.invalid(path, format!("expected a column, found an HDF5 {other:?}"))),
    }
}

fn read_mask(src: Src, cg: &Group, path: &str) -> Result<Vec<bool>, H5adError> {
    let mpath = format!("{path}/mask");
    read_bool(src, &src.dataset(cg, "mask", &mpath)?, &mpath)
}

fn read_categorical(src: Src, cg: &Group, path: &str) -> Result<Column, H5adError> {
    let cpath = format!("{path}/codes");
    let kpath = format!("{path}/categories");
    let codes64: Vec<i64> = read_numeric(src, &src.dataset(cg, "codes", &cpath)?, &cpath, None)?;
    let categories = read_strings(src, &src.dataset(cg, "categories", &kpath)?, &kpath)?;
    let ordered = src.bool_attr(cg, "ordered", path)?;
    let mut codes = Vec::with_capacity(codes64.len());
    for (row, &c) in codes64.iter().enumerate() {
        if c < -1 || c >= categories.len() as i64 {
            return Err(H5adError::CodeOutOfRange {
                file: src.file.to_path_buf(),
                path: cpath,
                row,
                code: c,
                n_categories: categories.len(),
            });
        }
        codes.push(c as i32);
    }
    Ok(Column::Categorical {
        codes,
        categories,
        ordered,
    })
}
