//! Doses end to end, as a user runs them: a synthetic drug screen with a dose column is ingested with
//! `--dose-col`, a dose-aware model is trained with one dose held out, and `scale predict` writes that
//! dose's cells (and requested doses) labelled by condition, ready for `scale eval --pert-col condition`.

use std::path::Path;
use std::process::Command;

use scale_io::{read_h5ad, write_h5ad, Column};

fn scale(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scale"));
    c.env("HDF5_USE_FILE_LOCKING", "FALSE").arg("--quiet").args(args);
    c
}

fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{c:?} failed:\n{text}");
    text
}

fn fails(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(!out.status.success(), "{c:?} succeeded");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// `scale ingest` of the synthetic screen's labels, plus `extra` arguments.
fn ingest(input: &str, out: &str, extra: &[&str]) {
    let args = [
        "ingest",
        "-i",
        input,
        "-o",
        out,
        "--pert-col",
        "target_gene",
        "--control",
        "non-targeting",
        "--context-col",
        "cell_type",
    ];
    ok(&mut scale(&[&args[..], extra].concat()));
}

fn tiny_config(dir: &Path, use_dose: bool) -> String {
    let preset = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tiny.toml");
    let text = std::fs::read_to_string(preset).unwrap();
    let text = text.replacen("[model]", &format!("[model]\nuse_dose = {use_dose}"), 1);
    let path = dir.join(format!("tiny-dose-{use_dose}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// (condition, dose) of every cell of an h5ad.
fn conditions(path: &Path) -> Vec<(String, f64)> {
    let a = read_h5ad(path).unwrap();
    let cond = a.obs.column("condition").expect("condition column").to_strings();
    let dose = match a.obs.column("dose") {
        Some(Column::Float(v)) => v.clone(),
        other => panic!("dose column {other:?}"),
    };
    cond.into_iter().zip(dose).collect()
}

#[test]
fn a_dose_model_predicts_a_held_out_dose_labelled_by_condition() {
    let dir = tempfile::tempdir().unwrap();
    let d = |s: &str| dir.path().join(s).display().to_string();
    ok(&mut scale(&[
        "synth",
        "--out",
        &d("s.h5ad"),
        "--cells",
        "1200",
        "--genes",
        "40",
        "--perts",
        "4",
        "--contexts",
        "1",
        "--batches",
        "1",
        "--drugs",
        "--log1p",
    ]));
    ingest(&d("s.h5ad"), &d("store"), &["--dose-col", "dose"]);
    let info = ok(&mut scale(&["store-info", &d("store")]));
    assert!(
        info.contains("doses        5 from `dose`: 0, 0.01, 0.1, 1, 10"),
        "{info}"
    );

    // A dose model needs a store with doses.
    ingest(&d("s.h5ad"), &d("nodose"), &[]);
    let err = fails(&mut scale(&[
        "train",
        "--store",
        &d("nodose"),
        "--holdout-perts",
        "DRUG000",
        "--config",
        &tiny_config(dir.path(), true),
        "--out",
        &d("bad_run"),
        "--steps",
        "2",
    ]));
    assert!(err.contains("--dose-col"), "{err}");

    ok(&mut scale(&[
        "train",
        "--store",
        &d("store"),
        "--holdout-doses",
        "DRUG000@1",
        "--config",
        &tiny_config(dir.path(), true),
        "--out",
        &d("run"),
        "--steps",
        "6",
    ]));
    ok(&mut scale(&[
        "predict",
        "--run",
        &d("run"),
        "--store",
        &d("store"),
        "--split",
        "test",
        "--out",
        &d("split"),
    ]));
    for file in ["pred.h5ad", "real.h5ad"] {
        let c = conditions(&dir.path().join("split").join(file));
        let held: Vec<_> = c.iter().filter(|x| x.0 != "non-targeting").collect();
        assert!(!held.is_empty(), "{file}: no held-out cells");
        assert!(
            held.iter().all(|x| x.0 == "DRUG000@1" && x.1 == 1.0),
            "{file}: {held:?}"
        );
        assert!(c.iter().filter(|x| x.0 == "non-targeting").all(|x| x.1 == 0.0));
    }
    // The held-out condition is evaluable as its own perturbation.
    ok(&mut scale(&[
        "eval",
        "--pred",
        &d("split/pred.h5ad"),
        "--real",
        &d("split/real.h5ad"),
        "--pert-col",
        "condition",
        "--control",
        "non-targeting",
        "--profile",
        "minimal",
        "--out",
        &d("ev"),
    ]));
    let results = std::fs::read_to_string(dir.path().join("ev/results.csv")).unwrap();
    assert!(results.lines().nth(1).unwrap().starts_with("DRUG000@1,"), "{results}");

    // Requests at any dose, from a controls file.
    std::fs::write(dir.path().join("perts_1col.tsv"), "DRUG000\t5\n").unwrap();
    let ctx = read_h5ad(&dir.path().join("split/real.h5ad"))
        .unwrap()
        .obs
        .column("cell_type")
        .unwrap()
        .to_strings()[0]
        .clone();
    std::fs::write(
        dir.path().join("perts.tsv"),
        format!("perturbation\tcontext\tn_cells\tdose\nDRUG000\t{ctx}\t5\t3\nDRUG000\t{ctx}\t4\t0.5\n"),
    )
    .unwrap();
    ok(&mut scale(&[
        "predict",
        "--run",
        &d("run"),
        "--controls",
        &d("split/real.h5ad"),
        "--perts",
        &d("perts.tsv"),
        "--out",
        &d("p.h5ad"),
    ]));
    let c = conditions(&dir.path().join("p.h5ad"));
    assert_eq!(c.iter().filter(|x| x.0 == "DRUG000@3" && x.1 == 3.0).count(), 5);
    assert_eq!(c.iter().filter(|x| x.0 == "DRUG000@0.5" && x.1 == 0.5).count(), 4);
    // A dose model refuses a request without a dose.
    let err = fails(&mut scale(&[
        "predict",
        "--run",
        &d("run"),
        "--controls",
        &d("split/real.h5ad"),
        "--perts",
        &d("perts_1col.tsv"),
        "--out",
        &d("p2.h5ad"),
    ]));
    assert!(err.contains("trained with doses"), "{err}");
    assert!(!dir.path().join("p2.h5ad").exists());

    // Regression (a NaN in the controls was reported as an unknown expression space): the error
    // names the file, the cell and the gene.
    let mut controls = read_h5ad(&dir.path().join("split/real.h5ad")).unwrap();
    match &mut controls.x {
        scale_io::Matrix::Csr(m) => m.data[0] = f32::NAN,
        scale_io::Matrix::Dense(m) => m.data[0] = f32::NAN,
    }
    write_h5ad(&dir.path().join("nan.h5ad"), &controls).unwrap();
    let err = fails(&mut scale(&[
        "predict",
        "--run",
        &d("run"),
        "--controls",
        &d("nan.h5ad"),
        "--perts",
        &d("perts.tsv"),
        "--out",
        &d("p3.h5ad"),
    ]));
    assert!(err.contains("nan.h5ad") && err.contains("not finite"), "{err}");
    assert!(!dir.path().join("p3.h5ad").exists());
}
