//! scale-io: the file formats of single-cell perturbation data.
//!
//! - [`h5ad`]: AnnData `.h5ad` files on the HDF5 C library (read: CSR/CSC/dense `X`, layers, `obs`/`var`
//!   dataframes with categoricals, `obsm`; row ranges for streaming. write: whole files or streamed CSR).
//! - [`space`]: expression-space detection (raw counts vs log1p-normalised), the rule cell-eval uses.
//! - [`matrix`], [`frame`]: the in-memory types every other crate works on.

pub mod anndata;
pub mod error;
pub mod frame;
pub mod guess;
pub mod h5ad;
pub mod matrix;
pub mod space;
pub mod validate;

pub use anndata::AnnData;
pub use error::H5adError;
pub use frame::{Column, Frame};
pub use guess::{find_control_label, guess_columns, ColumnGuess};
pub use h5ad::{read_h5ad, write_h5ad, H5adReader, H5adStreamWriter, MatrixEncoding, MatrixInfo};
pub use matrix::{CsrMatrix, DenseMatrix, Matrix};
pub use space::{detect_space, ExpressionSpace};
pub use validate::{check_counts, check_finite};
