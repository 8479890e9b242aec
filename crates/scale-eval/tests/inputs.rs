//! Bad inputs fail with errors that name the problem; the in-process API and the `minimal`
//! profile (the one training validation runs) agree with the full evaluation.

use std::path::Path;

use scale_eval::load::read_side;
use scale_eval::{check_genes, evaluate, EvalConfig, EvalData, EvalError, NoProgress, Profile};
use scale_io::{DenseMatrix, Matrix};

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn toy() -> (Matrix, Vec<String>, Vec<String>) {
    let x = Matrix::Dense(DenseMatrix {
        n_rows: 6,
        n_cols: 3,
        data: vec![
            0.5, 0.0, 1.0, 0.7, 0.2, 0.0, 0.1, 0.0, 0.3, 1.5, 0.9, 0.0, 1.2, 1.1, 0.1, 1.9, 0.0, 0.4,
        ],
    });
    (
        x,
        strings(&["ctrl", "ctrl", "ctrl", "A", "A", "B"]),
        strings(&["g0", "g1", "g2"]),
    )
}

fn cfg() -> EvalConfig {
    EvalConfig {
        control: "ctrl".into(),
        profile: Profile::Full,
        skip_metrics: vec![],
    }
}

#[test]
fn nan_names_cell_and_gene() {
    let (mut x, labels, genes) = toy();
    if let Matrix::Dense(d) = &mut x {
        d.data[4 * 3 + 2] = f32::NAN;
    }
    let d = EvalData {
        which: "pred",
        x: &x,
        labels: &labels,
        genes: &genes,
        cell_names: None,
    };
    match evaluate(&d, &d, &cfg(), &NoProgress) {
        Err(EvalError::NonFinite {
            cell, gene, gene_name, ..
        }) => {
            assert_eq!((cell, gene, gene_name.as_str()), (4, 2, "g2"));
        }
        other => panic!("expected NonFinite, got {:?}", other.err()),
    }
}

#[test]
fn differing_genes_name_the_first_difference() {
    let e = check_genes(&strings(&["a", "b", "c"]), &strings(&["a", "x", "c"])).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("position 1") && msg.contains("`b`") && msg.contains("`x`"),
        "{msg}"
    );
}

#[test]
fn differing_labels_are_listed_and_missing_control_is_an_error() {
    let (x, labels, genes) = toy();
    let mut other = labels.clone();
    other[5] = "C".into();
    let r = EvalData {
        which: "real",
        x: &x,
        labels: &labels,
        genes: &genes,
        cell_names: None,
    };
    let p = EvalData {
        labels: &other,
        which: "pred",
        ..r
    };
    let msg = evaluate(&r, &p, &cfg(), &NoProgress).unwrap_err().to_string();
    assert!(
        msg.contains("only in real: [B]") && msg.contains("only in pred: [C]"),
        "{msg}"
    );
    let c = EvalConfig {
        control: "non-targeting".into(),
        ..cfg()
    };
    assert!(matches!(
        evaluate(&r, &r, &c, &NoProgress),
        Err(EvalError::ControlMissing { .. })
    ));
}

#[test]
fn minimal_profile_agrees_with_full() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/synthetic");
    let real = read_side(&dir.join("real.h5ad"), "real", "target_gene", None).unwrap();
    let pred = read_side(&dir.join("pred.h5ad"), "pred", "target_gene", None).unwrap();
    let full = EvalConfig {
        control: "non-targeting".into(),
        profile: Profile::Full,
        skip_metrics: vec![],
    };
    let minimal = EvalConfig {
        profile: Profile::Minimal,
        ..full.clone()
    };
    let (f, _, _) = evaluate(&real.view(), &pred.view(), &full, &NoProgress).unwrap();
    let (m, rs, _) = evaluate(&real.view(), &pred.view(), &minimal, &NoProgress).unwrap();
    // minimal skips the energy distances
    assert!(rs.edist.is_none());
    let names: Vec<&str> = m.results.columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "overlap_at_N",
            "precision_at_N",
            "de_nsig_counts_real",
            "de_nsig_counts_pred",
            "pearson_delta",
            "mse",
            "mae",
            "discrimination_score_l1"
        ]
    );
    for (n, v) in &m.results.columns {
        let fv = f.results.column(n).unwrap();
        for (a, b) in v.iter().zip(fv) {
            assert!(
                a == b || (a.unwrap().is_nan() && b.unwrap().is_nan()),
                "{n}: {a:?} vs {b:?}"
            );
        }
    }
}
