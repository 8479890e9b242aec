//! Splits: cell-load TOML, programmatic hold-outs, leak refusal, named errors.

mod common;

use common::*;
use scale_store::{ingest, Holdout, IngestOptions, Split, Store, StoreError};

fn names(store: &Store, groups: &[usize]) -> Vec<String> {
    let m = store.manifest();
    groups
        .iter()
        .map(|&g| {
            let gi = &m.groups[g];
            format!(
                "{}.{}.{}",
                m.contexts[gi.context as usize], m.perts[gi.pert as usize], m.batches[gi.batch as usize]
            )
        })
        .collect()
}

#[test]
fn cell_load_toml_zeroshot_and_fewshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = build_standard(dir.path());
    let toml = r#"
[datasets]
ds = "/somewhere/ds/"

[training]
ds = "train"

[zeroshot]
"ds.B" = "test"

[fewshot]
[fewshot."ds.A"]
val = ["GENE2"]
test = []
"#;
    let s = Split::from_toml_str(toml, "t.toml", &store).unwrap();
    assert_eq!(
        names(&store, &s.train),
        vec!["A.GENE1.b1", "A.non-targeting.b1", "A.non-targeting.b2"]
    );
    assert_eq!(names(&store, &s.val), vec!["A.GENE2.b1", "A.GENE2.b2"]);
    assert_eq!(
        names(&store, &s.test),
        vec!["B.GENE1.b1", "B.GENE3.b2", "B.non-targeting.b1"]
    );
    let r = s.report(&store);
    assert_eq!((r.train.cells, r.train.control_cells, r.train.perts), (13, 9, 1));
    assert_eq!((r.val.cells, r.val.perts), (5, 1));
    assert_eq!((r.test.cells, r.test.perts, r.test.contexts), (12, 2, 1));
    assert!(r.to_string().contains("train"));
}

#[test]
fn toml_errors_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = build_standard(dir.path());
    let cases = [
        ("[training]\nother = \"train\"\n", "dataset", "other"),
        (
            "[training]\nds = \"train\"\n[zeroshot]\n\"ds.C\" = \"test\"\n",
            "context",
            "C",
        ),
        (
            "[training]\nds = \"train\"\n[fewshot.\"ds.A\"]\ntest = [\"NOPE\"]\n",
            "perturbation",
            "NOPE",
        ),
    ];
    for (text, kind, name) in cases {
        match Split::from_toml_str(text, "t.toml", &store).unwrap_err() {
            StoreError::UnknownName { kind: k, name: n, .. } => assert_eq!((k.as_str(), n.as_str()), (kind, name)),
            e => panic!("{text}: {e}"),
        }
    }
    let e = Split::from_toml_str("[zeroshot]\n\"ds.A\" = \"holdout\"\n", "t.toml", &store).unwrap_err();
    assert!(e.to_string().contains("expected \"val\" or \"test\""), "{e}");
    // GENE3 has no cells in A.
    let e = Split::from_toml_str(
        "[training]\nds = \"train\"\n[fewshot.\"ds.A\"]\ntest = [\"GENE3\"]\n",
        "t",
        &store,
    )
    .unwrap_err();
    assert!(e.to_string().contains("no cells"), "{e}");
}

#[test]
fn leaking_splits_are_refused() {
    // The same context in two datasets: holding a perturbation out in one only leaks it via the other.
    let dir = tempfile::tempdir().unwrap();
    let c1: &[Cell] = &[("a0", "non-targeting", "K562", "1"), ("a1", "G", "K562", "1")];
    let c2: &[Cell] = &[("b0", "non-targeting", "K562", "1"), ("b1", "G", "K562", "1")];
    let out = dir.path().join("s");
    ingest(
        vec![source("one", adata(c1, &["x"], 0)), source("two", adata(c2, &["x"], 0))],
        &out,
        &IngestOptions::default(),
        &|_, _| {},
    )
    .unwrap();
    let store = Store::open(&out).unwrap();
    let toml = "[training]\none = \"train\"\ntwo = \"train\"\n[fewshot.\"one.K562\"]\ntest = [\"G\"]\n";
    let e = Split::from_toml_str(toml, "t", &store).unwrap_err();
    assert!(matches!(e, StoreError::Leak { ref pert, .. } if pert == "G"), "{e}");
    // Only dataset `one` in training: `two` is excluded and nothing leaks... but nothing is left to train.
    let toml = "[training]\none = \"train\"\n[fewshot.\"one.K562\"]\ntest = [\"G\"]\n";
    let e = Split::from_toml_str(toml, "t", &store).unwrap_err();
    assert!(e.to_string().contains("no perturbed cells"), "{e}");
}

#[test]
fn holdouts_by_context_perturbation_and_seeded_fraction() {
    let dir = tempfile::tempdir().unwrap();
    let store = build_standard(dir.path());
    let s = Split::holdout(
        &store,
        &Holdout {
            test_contexts: vec!["B".into()],
            val_perts: vec!["GENE2".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(names(&store, &s.val), vec!["A.GENE2.b1", "A.GENE2.b2"]);
    assert_eq!(
        names(&store, &s.test),
        vec!["B.GENE1.b1", "B.GENE3.b2", "B.non-targeting.b1"]
    );

    let h = Holdout {
        test_fraction: 0.34,
        seed: 3,
        ..Default::default()
    };
    let a = Split::holdout(&store, &h).unwrap();
    let b = Split::holdout(&store, &h).unwrap();
    assert_eq!(a, b, "seeded");
    let r = a.report(&store);
    assert_eq!(r.test.perts, 1);
    assert_eq!(r.train.perts, 2);
    assert!(a.test.iter().all(|g| !a.train.contains(g)));

    let e = Split::holdout(
        &store,
        &Holdout {
            test_perts: vec!["GENE9".into()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, StoreError::UnknownName { ref name, .. } if name == "GENE9"));
    let e = Split::holdout(
        &store,
        &Holdout {
            test_contexts: vec!["Z".into()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, StoreError::UnknownName { ref kind, .. } if kind == "context"));
}
