//! Ingest from real files: .h5ad fixtures (streamed in row blocks) and Tahoe-100M parquet fixtures.
//! Fixtures: `python3 scripts/make_store_fixtures.py`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use scale_io::{read_h5ad, ExpressionSpace};
use scale_store::{
    ingest, CellSource, GeneMode, H5adSource, IngestOptions, LabelSpec, Layout, Store, StoreError, TahoeSource,
    ValueSource,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn spec() -> LabelSpec {
    LabelSpec {
        pert_col: "gene".into(),
        control: "non-targeting".into(),
        context_col: Some("cell_type".into()),
        batch_col: Some("gem_group".into()),
        dose_col: None,
    }
}

fn h5ad(name: &str, dataset: &str, value: ValueSource) -> Box<dyn CellSource> {
    Box::new(H5adSource::open(&fixture(name), dataset, value, spec(), 7).unwrap())
}

#[test]
fn h5ad_rows_land_in_their_groups_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let opts = IngestOptions {
        genes: GeneMode::Intersection,
        ..Default::default()
    };
    ingest(
        vec![
            h5ad("tiny_a.h5ad", "a", ValueSource::X),
            h5ad("tiny_b.h5ad", "b", ValueSource::X),
        ],
        &out,
        &opts,
        &|_, _| {},
    )
    .unwrap();
    let store = Store::open(&out).unwrap();
    store.verify().unwrap();
    let m = store.manifest();
    assert_eq!(m.n_cells, 70);
    assert_eq!(m.space, ExpressionSpace::RawCounts);
    let genes: Vec<String> = (3..12).map(|i| format!("G{i}")).collect();
    assert_eq!(m.genes, genes);
    assert_eq!(m.contexts, vec!["K562", "RPE1"]);
    // Reference: the whole files read in memory by scale-io.
    let mut want: HashMap<String, (Vec<f32>, String, String, String)> = HashMap::new();
    for f in ["tiny_a.h5ad", "tiny_b.h5ad"] {
        let a = read_h5ad(&fixture(f)).unwrap();
        let cols: Vec<usize> = genes
            .iter()
            .map(|g| a.var.index.iter().position(|v| v == g).unwrap())
            .collect();
        let x = a.x.to_dense().select_cols(&cols);
        let lab = |c: &str| a.obs.column(c).unwrap().to_strings();
        let (p, c, b) = (lab("gene"), lab("cell_type"), lab("gem_group"));
        for (i, n) in a.obs.index.iter().enumerate() {
            want.insert(n.clone(), (x.row(i).to_vec(), p[i].clone(), c[i].clone(), b[i].clone()));
        }
    }
    for g in 0..store.n_groups() {
        let gi = &m.groups[g];
        let d = store.read_group_dense(g).unwrap();
        for (r, n) in store
            .cell_names(store.group_rows(g).unwrap())
            .unwrap()
            .iter()
            .enumerate()
        {
            let (row, p, c, b) = &want[n];
            assert_eq!(d.row(r), &row[..], "{n}");
            assert_eq!(&m.perts[gi.pert as usize], p);
            assert_eq!(&m.contexts[gi.context as usize], c);
            let ds = &m.datasets[gi.dataset as usize].name;
            assert_eq!(m.batches[gi.batch as usize], format!("{ds}/{b}"));
        }
    }
}

#[test]
fn h5ad_obsm_source_and_strict_gene_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    ingest(
        vec![h5ad("tiny_b.h5ad", "b", ValueSource::Obsm("X_hvg".into()))],
        &out,
        &IngestOptions::default(),
        &|_, _| {},
    )
    .unwrap();
    let s = Store::open(&out).unwrap();
    assert_eq!(s.manifest().layout, Layout::Dense);
    // Named after var['highly_variable'] genes (every second of G3..G14).
    assert_eq!(s.manifest().genes, vec!["G3", "G5", "G7", "G9", "G11", "G13"]);
    assert_eq!(s.manifest().space, ExpressionSpace::Log1p);

    let err = ingest(
        vec![
            h5ad("tiny_a.h5ad", "a", ValueSource::X),
            h5ad("tiny_b.h5ad", "b", ValueSource::X),
        ],
        &dir.path().join("s2"),
        &IngestOptions::default(),
        &|_, _| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::GenesDiffer {
                n_missing: 3,
                n_extra: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(!dir.path().join("s2").exists());

    let mut bad = spec();
    bad.context_col = Some("celltype".into());
    let err = H5adSource::open(&fixture("tiny_a.h5ad"), "a", ValueSource::X, bad, 7)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("celltype") && err.to_string().contains("cell_type"),
        "{err}"
    );
    let err = H5adSource::open(
        &fixture("tiny_a.h5ad"),
        "a",
        ValueSource::Layer("counts".into()),
        spec(),
        7,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("no layer `counts`"), "{err}");
}

#[test]
fn tahoe_parquet_shards() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t");
    let src = TahoeSource::open(
        &[fixture("tahoe/data")],
        &fixture("tahoe/metadata"),
        "tahoe",
        "DMSO_TF",
        10,
    )
    .unwrap();
    assert_eq!(src.labels().control, "[('DMSO_TF', 0.0, 'uM')]");
    ingest(vec![Box::new(src)], &out, &IngestOptions::default(), &|_, _| {}).unwrap();
    let s = Store::open(&out).unwrap();
    let m = s.manifest();
    assert_eq!(m.n_cells, 64);
    assert_eq!(m.space, ExpressionSpace::RawCounts);
    let tokens: Vec<usize> = (3..23).collect();
    assert_eq!(m.genes, tokens.iter().map(|t| format!("SYM{t}")).collect::<Vec<_>>());
    assert_eq!(m.contexts, vec!["A549", "HT-29"]);
    assert_eq!(m.batches, vec!["plate1", "plate2"]);
    assert_eq!(
        m.perts,
        vec![
            "[('DMSO_TF', 0.0, 'uM')]",
            "[('Drug_A', 0.5, 'uM')]",
            "[('Drug_A', 5.0, 'uM')]",
            "[('Drug_B', 1.0, 'uM')]"
        ]
    );
    assert!(
        m.notes
            .iter()
            .any(|n| n.contains("sentinel element of 64 cells (tokens {1})")),
        "{:?}",
        m.notes
    );
    let samples = [
        "[('DMSO_TF', 0.0, 'uM')]",
        "[('Drug_A', 0.5, 'uM')]",
        "[('Drug_A', 5.0, 'uM')]",
        "[('Drug_B', 1.0, 'uM')]",
    ];
    for g in 0..s.n_groups() {
        let gi = &m.groups[g];
        let d = s.read_group_dense(g).unwrap();
        for (r, name) in s.cell_names(s.group_rows(g).unwrap()).unwrap().iter().enumerate() {
            // Barcode "II_001_SSS-lib_1105": II is the global cell index (see the fixture script).
            let i: usize = name[..2].parse().unwrap();
            assert_eq!(m.perts[gi.pert as usize], samples[i % 4], "{name}");
            assert_eq!(m.contexts[gi.context as usize], ["A549", "HT-29"][(i / 4) % 2]);
            for (j, &t) in tokens.iter().enumerate() {
                let want = if !(i + t).is_multiple_of(3) {
                    (1 + (i * t) % 4) as f32
                } else {
                    0.0
                };
                assert_eq!(d.get(r, j), want, "{name} token {t}");
            }
        }
    }
}

/// Dose mode: the drug is the perturbation and the concentration of `drugname_drugconc` its dose, so
/// Drug_A at 0.5 and 5 µM is one perturbation with two dose groups per context.
#[test]
fn tahoe_doses_split_drug_and_concentration() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t");
    let meta = fixture("tahoe/metadata");
    let src = TahoeSource::open(&[fixture("tahoe/data")], &meta, "tahoe", "DMSO_TF", 10)
        .unwrap()
        .with_doses(&meta)
        .unwrap();
    assert_eq!(src.labels().control, "DMSO_TF");
    ingest(vec![Box::new(src)], &out, &IngestOptions::default(), &|_, _| {}).unwrap();
    let s = Store::open(&out).unwrap();
    let m = s.manifest();
    assert_eq!(m.perts, vec!["DMSO_TF", "Drug_A", "Drug_B"]);
    assert_eq!(m.dose_col.as_deref(), Some("drugname_drugconc"));
    let mut conds: Vec<(String, f32)> = m
        .groups
        .iter()
        .map(|g| (m.perts[g.pert as usize].clone(), g.dose))
        .collect();
    conds.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    conds.dedup();
    assert_eq!(
        conds,
        vec![
            ("DMSO_TF".to_string(), 0.0),
            ("Drug_A".to_string(), 0.5),
            ("Drug_A".to_string(), 5.0),
            ("Drug_B".to_string(), 1.0)
        ]
    );
    // every cell keeps its sample's drug and dose (cell i is sample i % 4, see the fixture script)
    let doses = [0.0, 0.5, 5.0, 1.0];
    for g in 0..s.n_groups() {
        for name in s.cell_names(s.group_rows(g).unwrap()).unwrap() {
            let i: usize = name[..2].parse().unwrap();
            assert_eq!(m.groups[g].dose, doses[i % 4], "{name}");
        }
    }
}

#[test]
fn tahoe_missing_metadata_and_fields_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = TahoeSource::open(&[fixture("tahoe/data")], dir.path(), "t", "DMSO_TF", 10)
        .err()
        .unwrap();
    assert!(err.to_string().contains("gene_metadata.parquet"), "{err}");
    // A metadata file given as a cell shard lacks the cell fields.
    let mut src = TahoeSource::open(
        &[fixture("tahoe/metadata/drug_metadata.parquet")],
        &fixture("tahoe/metadata"),
        "t",
        "DMSO_TF",
        10,
    )
    .unwrap();
    let err = src.next_block().unwrap_err();
    assert!(
        matches!(err, StoreError::MissingColumn { ref column, .. } if column == "genes"),
        "{err}"
    );
}
