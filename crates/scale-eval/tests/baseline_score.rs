//! `cell-eval baseline` and `cell-eval score` parity on the synthetic fixture
//! (`scripts/make_eval_fixtures.py` writes `synthetic/baseline_mean.csv` and `synthetic/base_eval/`).
//!
//! Tolerances: the baseline vector is float32 in both (polars means of float32 columns, then a
//! numpy float32 mean over groups; we sum in float64): relative 1e-6. Scores are ratios of the
//! agg means read back from the same CSVs: 1e-12.

use std::path::{Path, PathBuf};

use scale_eval::fmt::{parse_csv, parse_float};
use scale_eval::load::read_side;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/synthetic")
        .join(p)
}

#[test]
fn cell_mean_baseline_matches_cell_eval() {
    let side = read_side(&fixture("real.h5ad"), "real", "target_gene", None).unwrap();
    let b = scale_eval::baseline::cell_mean_baseline(&side.x, &side.labels, "non-targeting").unwrap();
    let rows = parse_csv(&std::fs::read_to_string(fixture("baseline_mean.csv")).unwrap());
    assert_eq!(rows.len() - 1, side.genes.len());
    for (g, r) in rows[1..].iter().enumerate() {
        assert_eq!(r[0], side.genes[g]);
        let theirs = parse_float(&r[1]).unwrap();
        let mine = b.mean[g] as f64;
        assert!(
            (mine - theirs).abs() <= 1e-6 * theirs.abs().max(1e-9),
            "gene {}: {mine} vs {theirs}",
            r[0]
        );
    }
    // as many baseline cells per perturbation as the input has, then the controls
    let n_ctrl = side.labels.iter().filter(|l| *l == "non-targeting").count();
    assert_eq!(b.labels.len(), side.labels.len());
    assert_eq!(b.labels.iter().filter(|l| *l == "non-targeting").count(), n_ctrl);
}

#[test]
fn score_matches_cell_eval() {
    let dir = fixture("base_eval");
    let s = scale_eval::score::score_files(&dir.join("agg_user_results.csv"), &dir.join("agg_results.csv")).unwrap();
    let rows = parse_csv(&std::fs::read_to_string(dir.join("score.csv")).unwrap());
    assert_eq!(rows[0], vec!["metric", "from_baseline"]);
    assert_eq!(rows.len() - 1, s.len());
    for (r, (m, v)) in rows[1..].iter().zip(&s) {
        assert_eq!(&r[0], m);
        let theirs = parse_float(&r[1]).unwrap();
        assert!((v - theirs).abs() < 1e-12, "{m}: {v} vs {theirs}");
    }
}
