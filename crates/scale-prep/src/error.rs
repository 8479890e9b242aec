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
    #[error("refusing {step}: {what} is {found} (detected from its values); {step} expects {expected}")]
    WrongSpace {
        step: String,
        what: String,
        found: scale_io::ExpressionSpace,
        expected: String,
    },
}

/// Fails with [`PrepError::WrongSpace`] unless `found` is one of `allowed` (e.g. `log1p` on data
/// that is already log1p).
pub fn require_space(
    step: &str,
    what: &str,
    found: scale_io::ExpressionSpace,
    allowed: &[scale_io::ExpressionSpace],
) -> Result<(), PrepError> {
    if allowed.contains(&found) {
        return Ok(());
    }
    Err(PrepError::WrongSpace {
        step: step.into(),
        what: what.into(),
        found,
        expected: allowed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or "),
    })
}
