//! Typed errors of the h5ad reader and writer. Every variant names the file and the path inside it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum H5adError {
    #[error("{file}: cannot open as HDF5 ({reason}); is it an .h5ad file, complete and not truncated?")]
    NotHdf5 { file: PathBuf, reason: String },
    #[error("{file}: missing required element `{path}`")]
    Missing { file: PathBuf, path: String },
    #[error("{file}: `{path}` has encoding-type `{found}`; expected one of {expected}")]
    UnknownEncoding {
        file: PathBuf,
        path: String,
        found: String,
        expected: String,
    },
    #[error("{file}: `{path}`: {message}")]
    Invalid {
        file: PathBuf,
        path: String,
        message: String,
    },
    #[error("{file}: `{path}` has {found} rows; expected {expected} ({what})")]
    LengthMismatch {
        file: PathBuf,
        path: String,
        found: usize,
        expected: usize,
        what: String,
    },
    #[error("{file}: `{path}`: categorical code {code} at row {row} is out of range (0..{n_categories})")]
    CodeOutOfRange {
        file: PathBuf,
        path: String,
        row: usize,
        code: i64,
        n_categories: usize,
    },
    #[error("{file}: `{path}`: value {value} at cell {row}, gene {col} is {problem}")]
    BadValue {
        file: PathBuf,
        path: String,
        row: usize,
        col: usize,
        value: f64,
        problem: String,
    },
    #[error("{file}: `{path}`: HDF5 error: {source}")]
    Hdf5 {
        file: PathBuf,
        path: String,
        #[source]
        source: hdf5::Error,
    },
    #[error("{file}: I/O error: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
