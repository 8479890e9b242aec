//! Which expression space a matrix is in. Every command checks its inputs with this.
//!
//! Rule (as cell-eval guesses it, see `shared/docs/metrics.md`): no stored value has a fractional part above
//! 1e-3 → raw counts;
//! otherwise non-negative with max < 15 → log1p of normalised counts; anything else → other
//! (e.g. normalised but not logged, scaled/centred data, or embeddings).

use crate::Matrix;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpressionSpace {
    RawCounts,
    Log1p,
    Other,
}

impl ExpressionSpace {
    pub fn as_str(&self) -> &'static str {
        match self {
            ExpressionSpace::RawCounts => "raw-counts",
            ExpressionSpace::Log1p => "log1p",
            ExpressionSpace::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "raw-counts" | "counts" => Some(Self::RawCounts),
            "log1p" => Some(Self::Log1p),
            "other" => Some(Self::Other),
            _ => None,
        }
    }
}

impl std::fmt::Display for ExpressionSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Fractional part up to which a value still counts as an integer (cell-eval's tolerance).
pub const COUNT_FRACTION_TOLERANCE: f32 = 1e-3;

/// Largest log1p value a normalised matrix is expected to reach (cell-eval's threshold).
pub const LOG1P_MAX: f32 = 15.0;

/// Detects the space from the stored values (non-finite values make it `Other`; callers that need
/// finite input check that separately, with the cell and gene named).
pub fn detect_space(m: &Matrix) -> ExpressionSpace {
    detect_space_of_values(m.values())
}

/// Same rule on a slice of values (e.g. a sample of rows of a large file).
pub fn detect_space_of_values(values: &[f32]) -> ExpressionSpace {
    let mut all_integral = true;
    let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
    for &v in values {
        if !v.is_finite() {
            return ExpressionSpace::Other;
        }
        all_integral &= v.fract() <= COUNT_FRACTION_TOLERANCE;
        min = min.min(v);
        max = max.max(v);
    }
    if values.is_empty() {
        return ExpressionSpace::Log1p;
    }
    if min < 0.0 {
        ExpressionSpace::Other
    } else if all_integral {
        ExpressionSpace::RawCounts
    } else if max < LOG1P_MAX {
        ExpressionSpace::Log1p
    } else {
        ExpressionSpace::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_counts() {
        assert_eq!(detect_space_of_values(&[0.0, 3.0, 17.0]), ExpressionSpace::RawCounts);
    }

    #[test]
    fn small_fractions_are_log1p() {
        assert_eq!(detect_space_of_values(&[0.0, 0.69, 2.3]), ExpressionSpace::Log1p);
    }

    #[test]
    fn large_or_negative_values_are_other() {
        assert_eq!(detect_space_of_values(&[0.5, 200.5]), ExpressionSpace::Other);
        assert_eq!(detect_space_of_values(&[-0.5, 1.5]), ExpressionSpace::Other);
        assert_eq!(detect_space_of_values(&[f32::NAN]), ExpressionSpace::Other);
    }
}
