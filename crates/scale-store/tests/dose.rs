//! Doses through the store: a dose column splits groups, controls stay one group at dose 0, bad doses
//! are named errors, sampled sets carry their group's dose, and one dose can be held out.

mod common;

use std::sync::Arc;

use common::*;
use scale_io::{AnnData, Column};
use scale_store::{
    ingest, Holdout, IngestOptions, LabelSpec, MemorySource, Sampler, SamplerConfig, Split, Store, StoreError,
    ValueSource,
};

/// Controls (2 doses recorded, as a vehicle column would), DRUG at 0.1 and 1 µM in context A, a
/// guide with dose 0.
fn dosed_adata(doses: Column) -> AnnData {
    let mut cells = Vec::new();
    let mut labels = Vec::new();
    let mut add = |p: &'static str, n: usize| {
        for _ in 0..n {
            labels.push(p);
        }
    };
    add("non-targeting", 6);
    add("DRUG", 8);
    add("GENE1", 3);
    let names: Vec<String> = (0..labels.len()).map(|k| format!("cell{k}")).collect();
    for (k, p) in labels.iter().enumerate() {
        cells.push((names[k].as_str(), *p, "A", "b1"));
    }
    let mut a = adata(&cells, &["g0", "g1", "g2", "g3"], 0);
    a.obs.set_column("dose", doses);
    a
}

/// 6 controls (vehicle 0.1 recorded on two), DRUG at 0.1 ×4 then 1 ×4, GENE1 at 0.
fn good_doses() -> Vec<f64> {
    let mut d = vec![0.0, 0.0, 0.1, 0.0, 0.1, 0.0];
    d.extend([0.1, 0.1, 1.0, 1.0, 0.1, 1.0, 0.1, 1.0]);
    d.extend([0.0, 0.0, 0.0]);
    d
}

fn dose_spec() -> LabelSpec {
    LabelSpec {
        dose_col: Some("dose".into()),
        ..spec()
    }
}

fn build(dir: &std::path::Path, a: AnnData) -> Result<Store, StoreError> {
    let src = MemorySource::new("ds", a, ValueSource::X, dose_spec(), 4)?;
    let out = dir.join("store");
    ingest(vec![Box::new(src)], &out, &IngestOptions::default(), &|_, _| {})?;
    Store::open(&out)
}

/// (perturbation, dose, cells) of every group, in store order.
fn group_table(s: &Store) -> Vec<(String, f32, u64)> {
    let m = s.manifest();
    m.groups
        .iter()
        .map(|g| (m.perts[g.pert as usize].clone(), g.dose, g.n_cells))
        .collect()
}

#[test]
fn doses_split_groups_and_controls_stay_one_group_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let s = build(dir.path(), dosed_adata(Column::Float(good_doses()))).unwrap();
    let m = s.manifest();
    assert_eq!(m.dose_col.as_deref(), Some("dose"));
    assert_eq!(
        group_table(&s),
        vec![
            ("DRUG".to_string(), 0.1, 4),
            ("DRUG".to_string(), 1.0, 4),
            ("GENE1".to_string(), 0.0, 3),
            ("non-targeting".to_string(), 0.0, 6),
        ]
    );
    assert!(
        m.notes
            .iter()
            .any(|n| n.contains("2 control cells had a non-zero `dose`")),
        "{:?}",
        m.notes
    );
    // The rows of a dose group are the cells given that dose, in input order.
    let drug_low = s.cell_names(s.group_rows(0).unwrap()).unwrap();
    assert_eq!(drug_low, ["cell6", "cell7", "cell10", "cell12"]);
}

#[test]
fn doses_given_as_text_or_integers_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let text: Vec<String> = good_doses().iter().map(|d| d.to_string()).collect();
    let s = build(dir.path(), dosed_adata(Column::String(text))).unwrap();
    assert_eq!(s.manifest().groups.len(), 4);
    let dir = tempfile::tempdir().unwrap();
    let ints: Vec<i64> = good_doses().iter().map(|&d| (d * 10.0) as i64).collect();
    let s = build(dir.path(), dosed_adata(Column::Int(ints))).unwrap();
    assert_eq!(group_table(&s)[1], ("DRUG".to_string(), 10.0, 4));
}

#[test]
fn a_bad_dose_is_an_error_naming_the_cell() {
    for (bad, expect) in [(-1.0, "negative"), (f64::NAN, "not finite")] {
        let mut d = good_doses();
        d[9] = bad;
        let dir = tempfile::tempdir().unwrap();
        let Err(err) = build(dir.path(), dosed_adata(Column::Float(d))) else {
            panic!("bad dose accepted");
        };
        let msg = err.to_string();
        assert!(
            msg.contains("cell9") && msg.contains("\"dose\"") && msg.contains(expect),
            "{msg}"
        );
    }
    let mut text: Vec<String> = good_doses().iter().map(|d| d.to_string()).collect();
    text[3] = "high".into();
    let dir = tempfile::tempdir().unwrap();
    let msg = build(dir.path(), dosed_adata(Column::String(text)))
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("cell3") && msg.contains("not a number"), "{msg}");
    // A missing dose column names the option.
    let src = MemorySource::new("ds", standard_adata(), ValueSource::X, dose_spec(), 4);
    let msg = src.err().unwrap().to_string();
    assert!(msg.contains("--dose-col") && msg.contains("`dose`"), "{msg}");
}

#[test]
fn sampled_sets_carry_their_group_dose() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(build(dir.path(), dosed_adata(Column::Float(good_doses()))).unwrap());
    let cfg = SamplerConfig {
        n_sets: 3,
        set_size: 2,
        seed: 1,
        threads: 0,
        identity_fraction: 0.0,
        prefetch: 1,
        start_batch: 0,
    };
    let m = s.manifest().clone();
    let mut sampler = Sampler::new(s.clone(), (0..s.n_groups()).collect(), cfg).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..8 {
        let b = sampler.next_batch().unwrap();
        for i in 0..b.n_sets {
            let name = &m.perts[b.pert[i] as usize];
            let want: &[f32] = match name.as_str() {
                "DRUG" => &[0.1, 1.0],
                _ => &[0.0],
            };
            assert!(want.contains(&b.dose[i]), "{name} sampled at dose {}", b.dose[i]);
            // Every target cell of the set comes from the group of that dose.
            let g = (0..m.groups.len())
                .find(|&g| m.groups[g].pert == b.pert[i] && m.groups[g].dose == b.dose[i])
                .unwrap();
            let rows: Vec<Vec<f32>> = s
                .group_rows(g)
                .unwrap()
                .map(|r| s.read_rows_dense(r..r + 1).unwrap().data)
                .collect();
            for c in 0..b.set_size {
                let cell = &b.target[(i * b.set_size + c) * 4..(i * b.set_size + c + 1) * 4];
                assert!(rows.iter().any(|r| r == cell), "a {name} cell not from its dose group");
            }
            seen.insert((name.clone(), b.dose[i].to_bits()));
        }
    }
    assert!(seen.len() >= 3, "{seen:?}");
}

#[test]
fn holding_out_one_dose_keeps_the_others_in_training() {
    let dir = tempfile::tempdir().unwrap();
    let s = build(dir.path(), dosed_adata(Column::Float(good_doses()))).unwrap();
    let h = Holdout {
        test_doses: vec!["DRUG@1".into()],
        ..Default::default()
    };
    let split = Split::holdout(&s, &h).unwrap();
    let m = s.manifest();
    assert_eq!(split.test.len(), 1);
    assert_eq!(m.groups[split.test[0]].dose, 1.0);
    assert!(split
        .train
        .iter()
        .any(|&g| m.perts[m.groups[g].pert as usize] == "DRUG" && m.groups[g].dose == 0.1));
    for (spec, expect) in [
        ("DRUG@2", "has no cells at dose 2"),
        ("DRUG", "expected PERTURBATION@DOSE"),
        ("NOPE@1", "NOPE"),
        ("DRUG@x", "not a number"),
    ] {
        let h = Holdout {
            test_doses: vec![spec.into()],
            ..Default::default()
        };
        let msg = Split::holdout(&s, &h).err().unwrap().to_string();
        assert!(msg.contains(expect), "{spec}: {msg}");
    }
    // Holding out the perturbation holds out every dose of it.
    let h = Holdout {
        test_perts: vec!["DRUG".into()],
        ..Default::default()
    };
    assert_eq!(Split::holdout(&s, &h).unwrap().test.len(), 2);
}

#[test]
fn a_store_without_doses_has_dose_zero_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let s = build_standard(dir.path());
    assert_eq!(s.manifest().dose_col, None);
    assert!(s.manifest().groups.iter().all(|g| g.dose == 0.0));
}
