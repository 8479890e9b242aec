//! `cell-eval score`: baseline-normalised scores from two `agg_results.csv` tables.
//!
//! On the `mean` row: metrics whose best value is 0 score `1 - user/base`, those whose best value is
//! 1 score `(user - base) / (1 - base)`; NaN (and missing) become 0, negatives are clipped to 0;
//! `avg_score` is the mean. Output order as cell-eval: best-0 metrics, best-1 metrics, `avg_score`.
//! Columns not in the metric registry (e.g. `de_nsig_counts_real`) are skipped with a warning.

use std::path::Path;

use crate::error::{EvalError, Result};
use crate::fmt::{fmt_f64, parse_float, write_atomic};
use crate::profile::{best_value, BestValue};

/// (metric, from_baseline) rows, `avg_score` last.
pub type Scores = Vec<(String, f64)>;

/// One statistic row (e.g. `mean`) of an `agg_results.csv`: (metric names, values; unparsable → NaN).
pub fn read_agg(path: &Path, statistic: &str) -> Result<(Vec<String>, Vec<f64>)> {
    let err = |message: String| EvalError::Csv {
        file: path.to_path_buf(),
        message,
    };
    let rows = crate::fmt::read_csv_rows(path)?;
    let header = rows.first().ok_or_else(|| err("empty file".into()))?;
    if header.first().map(|s| s.as_str()) != Some("statistic") {
        return Err(err(format!(
            "missing `statistic` column (first column is {:?}); expected an agg_results.csv",
            header.first()
        )));
    }
    let row = rows
        .iter()
        .skip(1)
        .find(|r| r.first().map(|s| s.as_str()) == Some(statistic))
        .ok_or_else(|| err(format!("no `{statistic}` row")))?;
    let vals = header[1..]
        .iter()
        .enumerate()
        .map(|(i, _)| row.get(i + 1).and_then(|s| parse_float(s)).unwrap_or(f64::NAN))
        .collect();
    Ok((header[1..].to_vec(), vals))
}

/// Scores `user` against `base` (both agg_results.csv paths).
pub fn score_files(user: &Path, base: &Path) -> Result<Scores> {
    let (cu, vu) = read_agg(user, "mean")?;
    let (cb, vb) = read_agg(base, "mean")?;
    if cu != cb {
        return Err(EvalError::Score(format!(
            "columns of {} and {} differ: {cu:?} vs {cb:?}",
            user.display(),
            base.display()
        )));
    }
    Ok(score_values(&cu, &vu, &vb))
}

/// Scores from the `mean` values of matching columns.
pub fn score_values(names: &[String], user: &[f64], base: &[f64]) -> Scores {
    let mut zero = Vec::new();
    let mut one = Vec::new();
    for (i, n) in names.iter().enumerate() {
        match best_value(n) {
            Some(BestValue::Zero) => zero.push((n.clone(), 1.0 - user[i] / base[i])),
            Some(BestValue::One) => one.push((n.clone(), (user[i] - base[i]) / (1.0 - base[i]))),
            Some(BestValue::None) => {}
            None => tracing::warn!("metric `{n}` not in the registry; skipped (as cell-eval does)"),
        }
    }
    let mut out: Scores = zero
        .into_iter()
        .chain(one)
        .map(|(n, v)| (n, if v.is_nan() { 0.0 } else { v.max(0.0) }))
        .collect();
    let avg = out.iter().map(|(_, v)| v).sum::<f64>() / out.len() as f64;
    out.push(("avg_score".into(), avg));
    out
}

/// Writes `metric,from_baseline` CSV atomically.
pub fn write_scores(path: &Path, scores: &Scores) -> Result<()> {
    let mut s = String::from("metric,from_baseline\n");
    for (n, v) in scores {
        s.push_str(&format!("{n},{}\n", fmt_f64(*v)));
    }
    write_atomic(path, s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_clips_and_zeroes_nan() {
        let names: Vec<String> = ["mae", "overlap_at_N", "pearson_delta", "de_nsig_counts_real"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = score_values(&names, &[0.5, 0.6, f64::NAN, 3.0], &[1.0, 0.2, 0.5, 2.0]);
        assert_eq!(s[0], ("mae".to_string(), 0.5));
        assert!((s[1].1 - 0.5).abs() < 1e-12);
        assert_eq!(s[2].1, 0.0);
        assert_eq!(s[3].0, "avg_score");
        assert!((s[3].1 - 1.0 / 3.0).abs() < 1e-12);
    }
}
