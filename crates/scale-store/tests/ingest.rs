//! Ingest from in-memory AnnData: grouping, values, contract, errors, atomicity.

mod common;

use std::collections::HashMap;

use common::*;
use scale_io::ExpressionSpace;
use scale_store::{ingest, GeneMode, IngestOptions, Layout, Store, StoreError};

#[test]
fn groups_are_contiguous_and_rows_match_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let store = build_standard(dir.path());
    let m = store.manifest();
    assert_eq!(m.layout, Layout::Sparse);
    assert_eq!(m.n_cells, 30);
    assert_eq!(m.genes, vec!["g0", "g1", "g2", "g3", "g4", "g5"]);
    assert_eq!(m.space, ExpressionSpace::RawCounts);
    assert_eq!(m.perts, vec!["GENE1", "GENE2", "GENE3", "non-targeting"]);
    assert_eq!(m.perts[m.control_pert as usize], "non-targeting");
    assert_eq!(m.contexts, vec!["A", "B"]);
    assert_eq!(m.batches, vec!["b1", "b2"]);
    // (A,GENE1,b1) (A,GENE2,b1) (A,GENE2,b2) (A,nt,b1) (A,nt,b2) (B,GENE1,b1) (B,GENE3,b2) (B,nt,b1)
    assert_eq!(m.groups.len(), 8);
    assert_eq!(m.pert_counts, vec![9, 5, 3, 13]);
    store.verify().unwrap();

    // Every cell sits in the group of its labels, with the values it had in the input.
    let cells = standard_cells();
    let index: HashMap<&str, usize> = cells.iter().enumerate().map(|(i, c)| (c.0.as_str(), i)).collect();
    let mut seen = 0;
    for (g, gi) in m.groups.iter().enumerate() {
        let names = store.cell_names(store.group_rows(g).unwrap()).unwrap();
        let dense = store.read_group_dense(g).unwrap();
        assert_eq!(dense.n_rows as u64, gi.n_cells);
        for (r, name) in names.iter().enumerate() {
            let i = index[name.as_str()];
            let c = &cells[i];
            assert_eq!(c.1, m.perts[gi.pert as usize]);
            assert_eq!(c.2, m.contexts[gi.context as usize]);
            assert_eq!(c.3, m.batches[gi.batch as usize]);
            for j in 0..6 {
                assert_eq!(dense.get(r, j), value(i, j), "cell {name} gene {j}");
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 30);
    // Input order is kept within a group.
    let g0 = store.cell_names(store.group_rows(0).unwrap()).unwrap();
    assert_eq!(g0, vec!["cell6", "cell7", "cell8", "cell9"]);
    // Control pools per context.
    let a = m.context_index("A").unwrap();
    let ctrl: Vec<usize> = store.control_groups(a);
    assert_eq!(ctrl.len(), 2);
    assert!(ctrl
        .iter()
        .all(|&g| m.groups[g].pert == m.control_pert && m.groups[g].context == a));
}

#[test]
fn normalize_and_log1p_match_the_formula() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let opts = IngestOptions {
        target_sum: Some(100.0),
        log1p: true,
        ..Default::default()
    };
    ingest(vec![source("ds", standard_adata())], &out, &opts, &|_, _| {}).unwrap();
    let store = Store::open(&out).unwrap();
    let m = store.manifest();
    assert_eq!(m.space, ExpressionSpace::Log1p);
    assert_eq!(m.normalization.target_sum, Some(100.0));
    let cells = standard_cells();
    let names = store.cell_names(0..30).unwrap();
    let dense = store.read_rows_dense(0..30).unwrap();
    for (r, name) in names.iter().enumerate() {
        let i = cells.iter().position(|c| &c.0 == name).unwrap();
        let total: f32 = (0..6).map(|j| value(i, j)).sum();
        for j in 0..6 {
            let want = (value(i, j) * 100.0 / total).ln_1p();
            assert!((dense.get(r, j) - want).abs() < 1e-5, "{name} {j}");
        }
    }
}

#[test]
fn missing_column_and_unknown_control_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let mut spec = spec();
    spec.pert_col = "gene".into();
    let err = scale_store::MemorySource::new("ds", standard_adata(), scale_store::ValueSource::X, spec, 4)
        .err()
        .unwrap();
    assert!(
        matches!(err, StoreError::MissingColumn { ref column, .. } if column == "gene"),
        "{err}"
    );
    assert!(
        err.to_string().contains("perturbation"),
        "lists available columns: {err}"
    );

    let mut spec = common::spec();
    spec.control = "DMSO".into();
    let src = scale_store::MemorySource::new("ds", standard_adata(), scale_store::ValueSource::X, spec, 4).unwrap();
    let err = ingest(vec![Box::new(src)], &out, &IngestOptions::default(), &|_, _| {}).unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownControl { ref label, .. } if label == "DMSO"),
        "{err}"
    );
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "temporary directory removed"
    );
}

#[test]
fn context_without_controls_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = adata(
        &[
            ("c0", "non-targeting", "A", "1"),
            ("c1", "G", "A", "1"),
            ("c2", "G", "B", "1"),
        ],
        &["x", "y"],
        0,
    );
    let err = ingest(
        vec![source("ds", a)],
        &dir.path().join("s"),
        &IngestOptions::default(),
        &|_, _| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, StoreError::NoControls { ref context, .. } if context == "B"),
        "{err}"
    );
}

#[test]
fn duplicate_cells_across_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cells: &[Cell] = &[("c0", "non-targeting", "A", "1"), ("c1", "G", "A", "1")];
    let err = ingest(
        vec![
            source("one", adata(cells, &["x"], 0)),
            source("two", adata(cells, &["x"], 0)),
        ],
        &dir.path().join("s"),
        &IngestOptions::default(),
        &|_, _| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicateCell { ref cell, .. } if cell == "c0"),
        "{err}"
    );
}

#[test]
fn gene_lists_strict_intersection_union() {
    let dir = tempfile::tempdir().unwrap();
    let c1: &[Cell] = &[("a0", "non-targeting", "A", "1"), ("a1", "G", "A", "1")];
    let c2: &[Cell] = &[("b0", "non-targeting", "A", "1"), ("b1", "H", "A", "1")];
    let mk = || {
        vec![
            source("one", adata(c1, &["x", "y", "z"], 0)),
            source("two", adata(c2, &["z", "w", "x"], 10)),
        ]
    };
    let err = ingest(mk(), &dir.path().join("s0"), &IngestOptions::default(), &|_, _| {}).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::GenesDiffer {
                n_missing: 1,
                n_extra: 1,
                ..
            }
        ),
        "{err}"
    );

    let opts = IngestOptions {
        genes: GeneMode::Intersection,
        ..Default::default()
    };
    ingest(mk(), &dir.path().join("s1"), &opts, &|_, _| {}).unwrap();
    let s = Store::open(&dir.path().join("s1")).unwrap();
    assert_eq!(s.manifest().genes, vec!["x", "z"]);
    assert_eq!(s.manifest().datasets[1].n_genes_dropped, 1);
    // Batches of several datasets are qualified by dataset.
    assert_eq!(s.manifest().batches, vec!["one/1", "two/1"]);
    // Cell b1 (input row 1 of `two`, value offset 10): its x is input column 2, z is column 0.
    let names = s.cell_names(0..4).unwrap();
    let r = names.iter().position(|n| n == "b1").unwrap();
    let d = s.read_rows_dense(0..4).unwrap();
    assert_eq!(d.get(r, 0), value(11, 2));
    assert_eq!(d.get(r, 1), value(11, 0));

    let opts = IngestOptions {
        genes: GeneMode::Union,
        ..Default::default()
    };
    ingest(mk(), &dir.path().join("s2"), &opts, &|_, _| {}).unwrap();
    let s = Store::open(&dir.path().join("s2")).unwrap();
    assert_eq!(s.manifest().genes, vec!["x", "y", "z", "w"]);
    assert_eq!(s.manifest().datasets[1].n_genes_missing, 1);
}

#[test]
fn existing_output_is_not_replaced_without_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    ingest(
        vec![source("ds", standard_adata())],
        &out,
        &IngestOptions::default(),
        &|_, _| {},
    )
    .unwrap();
    let err = ingest(
        vec![source("ds", standard_adata())],
        &out,
        &IngestOptions::default(),
        &|_, _| {},
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::Exists { .. }));
    let opts = IngestOptions {
        overwrite: true,
        ..Default::default()
    };
    ingest(vec![source("ds", standard_adata())], &out, &opts, &|_, _| {}).unwrap();
    Store::open(&out).unwrap().verify().unwrap();
}

#[test]
fn corrupt_files_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let store = build_standard(dir.path());
    let path = store.dir().join("data.f32");
    drop(store);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let s = Store::open(&dir.path().join("store")).unwrap();
    assert!(matches!(s.verify().unwrap_err(), StoreError::Corrupt { ref file, .. } if file == "data.f32"));
    bytes.pop();
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        Store::open(&dir.path().join("store")).unwrap_err(),
        StoreError::Corrupt { .. }
    ));
}

#[test]
fn obsm_embeddings_are_stored_dense() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = standard_adata();
    let emb = scale_io::DenseMatrix {
        n_rows: 30,
        n_cols: 3,
        data: (0..90).map(|v| v as f32 * 0.5 - 7.0).collect(),
    };
    a.obsm.push(("X_pca".into(), emb.clone()));
    let src =
        scale_store::MemorySource::new("ds", a, scale_store::ValueSource::Obsm("X_pca".into()), spec(), 7).unwrap();
    let out = dir.path().join("s");
    ingest(vec![Box::new(src)], &out, &IngestOptions::default(), &|_, _| {}).unwrap();
    let s = Store::open(&out).unwrap();
    assert_eq!(s.manifest().layout, Layout::Dense);
    assert_eq!(s.manifest().genes, vec!["X_pca:0", "X_pca:1", "X_pca:2"]);
    assert_eq!(s.manifest().space, ExpressionSpace::Other);
    let names = s.cell_names(0..30).unwrap();
    let d = s.read_rows_dense(0..30).unwrap();
    for (r, n) in names.iter().enumerate() {
        let i: usize = n.trim_start_matches("cell").parse().unwrap();
        assert_eq!(d.row(r), emb.row(i));
    }
    s.verify().unwrap();
}
