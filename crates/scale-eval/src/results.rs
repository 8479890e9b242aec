//! Per-perturbation results (`results.csv`) and their polars-`describe()` summary (`agg_results.csv`).

use std::path::Path;

use crate::error::Result;
use crate::fmt::{csv_field, fmt_f64, fmt_opt, write_atomic};

/// One row per perturbation (sorted), one column per metric in computation order. `None` is a
/// missing value (polars null: the metric gave no value for that perturbation), distinct from NaN.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultsTable {
    pub perts: Vec<String>,
    pub columns: Vec<(String, Vec<Option<f64>>)>,
    /// Real cells per perturbation (scale's extra last column `n_cells`; not part of `describe`).
    pub n_cells: Vec<usize>,
}

/// Summary statistics per metric: rows `count, null_count, mean, std, min, 25%, 50%, 75%, max`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AggTable {
    pub columns: Vec<(String, [Option<f64>; 9])>,
}

pub const AGG_ROWS: [&str; 9] = ["count", "null_count", "mean", "std", "min", "25%", "50%", "75%", "max"];

impl ResultsTable {
    pub fn column(&self, name: &str) -> Option<&[Option<f64>]> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// cell-eval's `results.csv` plus the `n_cells` column.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("perturbation");
        for (n, _) in &self.columns {
            s.push(',');
            s.push_str(&csv_field(n));
        }
        s.push_str(",n_cells\n");
        for (i, p) in self.perts.iter().enumerate() {
            s.push_str(&csv_field(p));
            for (_, v) in &self.columns {
                s.push(',');
                s.push_str(&fmt_opt(v[i]));
            }
            s.push_str(&format!(",{}\n", self.n_cells.get(i).copied().unwrap_or(0)));
        }
        s
    }

    pub fn write_csv(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_csv().as_bytes())
    }

    /// polars `DataFrame.describe()` of the metric columns, with its quirks: the mean and std of a
    /// column holding a NaN are NaN, min/max skip NaN, percentiles use "nearest" interpolation with
    /// NaN sorted last, nulls are only counted.
    pub fn describe(&self) -> AggTable {
        AggTable {
            columns: self
                .columns
                .iter()
                .map(|(n, v)| (n.clone(), describe_column(v)))
                .collect(),
        }
    }
}

fn describe_column(v: &[Option<f64>]) -> [Option<f64>; 9] {
    let vals: Vec<f64> = v.iter().flatten().copied().collect();
    let n = vals.len();
    let nulls = v.len() - n;
    let mut out = [None; 9];
    out[0] = Some(n as f64);
    out[1] = Some(nulls as f64);
    if n == 0 {
        return out;
    }
    let mean = vals.iter().sum::<f64>() / n as f64;
    out[2] = Some(mean);
    out[3] = if n < 2 {
        None
    } else {
        Some((vals.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64).sqrt())
    };
    let finite: Vec<f64> = vals.iter().copied().filter(|x| !x.is_nan()).collect();
    let (min, max) = if finite.is_empty() {
        (f64::NAN, f64::NAN)
    } else {
        (
            finite.iter().copied().fold(f64::INFINITY, f64::min),
            finite.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    };
    out[4] = Some(min);
    let mut sorted = vals.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    // total_cmp puts negative NaN first; polars sorts every NaN last
    sorted.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.total_cmp(b),
    });
    for (k, q) in [0.25, 0.5, 0.75].iter().enumerate() {
        // polars "nearest": index round((n - 1) * q), halves away from zero
        let idx = ((n - 1) as f64 * q).round() as usize;
        out[5 + k] = Some(sorted[idx.min(n - 1)]);
    }
    out[8] = Some(max);
    out
}

impl AggTable {
    pub fn get(&self, metric: &str, stat: &str) -> Option<f64> {
        let r = AGG_ROWS.iter().position(|s| *s == stat)?;
        self.columns.iter().find(|(n, _)| n == metric).and_then(|(_, v)| v[r])
    }

    pub fn to_csv(&self) -> String {
        let mut s = String::from("statistic");
        for (n, _) in &self.columns {
            s.push(',');
            s.push_str(&csv_field(n));
        }
        s.push('\n');
        for (r, name) in AGG_ROWS.iter().enumerate() {
            s.push_str(name);
            for (_, v) in &self.columns {
                s.push(',');
                s.push_str(&fmt_opt(v[r]));
            }
            s.push('\n');
        }
        s
    }

    pub fn write_csv(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_csv().as_bytes())
    }
}

/// Formats a value the way the CSVs do (for callers printing tables).
pub fn format_value(v: Option<f64>) -> String {
    v.map(fmt_f64).unwrap_or_else(|| "null".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_matches_polars_quirks() {
        // polars 2.1: [1, 2, NaN, null, 4] -> count 4, null 1, mean NaN, std NaN, min 1, 25% 2,
        // 50% 4, 75% 4, max 4
        let d = describe_column(&[Some(1.0), Some(2.0), Some(f64::NAN), None, Some(4.0)]);
        assert_eq!(d[0], Some(4.0));
        assert_eq!(d[1], Some(1.0));
        assert!(d[2].unwrap().is_nan() && d[3].unwrap().is_nan());
        assert_eq!(&d[4..], &[Some(1.0), Some(2.0), Some(4.0), Some(4.0), Some(4.0)]);
        let e = describe_column(&[Some(1.0), Some(2.0), Some(3.0), Some(4.0), Some(5.0)]);
        assert!((e[3].unwrap() - 1.5811388300841898).abs() < 1e-15);
        assert_eq!(describe_column(&[Some(1.0)])[3], None);
    }
}
