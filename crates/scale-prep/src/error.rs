//! Typed errors of preprocessing and generation. Each names what was wrong and what was expected.

#[derive(Debug, thiserror::Error)]
pub enum PrepError {
    #[error("{what}: matrix contains a non-finite value ({value}) at cell {row}, gene {col}")]
    NonFinite {
        what: String,
        row: usize,
        col: usize,
        value: f32,
    },
    #[error("{what}: expected {expected}, found {found}")]
    Shape {
        what: String,
        expected: String,
        found: String,
    },
    #[error("invalid option `{option}`: {message}")]
    InvalidOption { option: String, message: String },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    #[error("loess fit failed: {0}")]
    Loess(String),
}
