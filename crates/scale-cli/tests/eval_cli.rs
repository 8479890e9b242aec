//! `scale eval` end to end, as a user runs it: the binary on the committed cell-eval parity fixture
//! (`crates/scale-eval/tests/fixtures/papalexi`, made by `scripts/make_eval_fixtures.py`). The DE CSVs
//! are written on a background thread while the next file is processed; this checks that they land
//! whole and byte-identical to pdex's, and that results.csv carries cell-eval's numbers.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scale-eval/tests/fixtures/papalexi")
        .join(name)
}

fn scale() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scale"));
    c.env("HDF5_USE_FILE_LOCKING", "FALSE");
    c
}

/// `scale --quiet eval` on the fixture pair into `out`, with `extra` arguments.
fn eval(out: &Path, extra: &[&str]) -> Command {
    let mut c = scale();
    c.args(["--quiet", "eval", "--pert-col", "perturbation"])
        .args(extra)
        .arg("--real")
        .arg(fixture("real.h5ad"))
        .arg("--pred")
        .arg(fixture("pred.h5ad"))
        .arg("--out")
        .arg(out);
    c
}

fn csv(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    scale_eval::fmt::parse_csv(&text)
}

#[test]
fn eval_cli_writes_cell_eval_outputs() {
    let out = tempfile::tempdir().unwrap();
    let status = eval(out.path(), &["--profile", "full", "--threads", "2"])
        .status()
        .unwrap();
    assert!(status.success());
    for name in ["real_de.csv", "pred_de.csv"] {
        let ours = std::fs::read(out.path().join(name)).unwrap();
        let theirs = std::fs::read(fixture(name)).unwrap();
        assert!(ours == theirs, "{name} differs from pdex's");
    }
    // no temp files left behind by the atomic writes
    let names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");

    let (ours, theirs) = (csv(&out.path().join("results.csv")), csv(&fixture("results.csv")));
    assert_eq!(ours.len(), theirs.len(), "one row per perturbation");
    let mut compared = 0;
    for (c, name) in theirs[0].iter().enumerate().skip(1) {
        let k = ours[0]
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("results.csv lacks {name}"));
        for (a, b) in ours[1..].iter().zip(&theirs[1..]) {
            assert_eq!(a[0], b[0], "row order");
            let (x, y) = (scale_eval::fmt::parse_float(&a[k]), scale_eval::fmt::parse_float(&b[c]));
            match (x, y) {
                (None, None) => {}
                (Some(x), Some(y)) if x.is_nan() || y.is_nan() => assert!(x.is_nan() && y.is_nan(), "{name} {}", a[0]),
                (Some(x), Some(y)) => {
                    assert!(
                        (x - y).abs() <= 1e-7 + 1e-5 * x.abs().max(y.abs()),
                        "{name} {}: {x} vs {y}",
                        a[0]
                    )
                }
                _ => panic!("null mismatch in {name} for {}", a[0]),
            }
            compared += 1;
        }
    }
    assert!(compared > 100);
}

#[test]
fn eval_cli_names_a_missing_control_label() {
    let out = tempfile::tempdir().unwrap();
    let o = eval(out.path(), &["--control", "NT-absent"]).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("NT-absent"), "stderr: {err}");
    assert!(!out.path().join("results.csv").exists());
}
