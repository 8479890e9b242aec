//! The set sampler: matching, determinism across thread counts, resampling, identity sets.

mod common;

use std::sync::Arc;

use common::*;
use scale_store::{Sampler, SamplerConfig, SetBatch, Store};

fn cfg(threads: usize) -> SamplerConfig {
    SamplerConfig {
        n_sets: 4,
        set_size: 5,
        seed: 7,
        threads,
        identity_fraction: 0.0,
        prefetch: 2,
        start_batch: 0,
    }
}

fn all_groups(s: &Store) -> Vec<usize> {
    (0..s.n_groups()).collect()
}

/// Store row whose dense values equal `row` (cells have distinct value patterns in the fixture).
fn rows_matching(s: &Store, row: &[f32]) -> Vec<usize> {
    let d = s.read_rows_dense(0..s.n_cells()).unwrap();
    (0..s.n_cells()).filter(|&r| d.row(r) == row).collect()
}

fn take(sampler: &mut Sampler, n: usize) -> Vec<SetBatch> {
    (0..n).map(|_| sampler.next_batch().unwrap().clone()).collect()
}

#[test]
fn batches_are_identical_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(build_standard(dir.path()));
    let reference = take(&mut Sampler::new(store.clone(), all_groups(&store), cfg(0)).unwrap(), 7);
    for threads in [1, 2, 3] {
        let got = take(
            &mut Sampler::new(store.clone(), all_groups(&store), cfg(threads)).unwrap(),
            7,
        );
        for (k, (a, b)) in reference.iter().zip(&got).enumerate() {
            assert_eq!(a.pert, b.pert, "threads {threads} batch {k}");
            assert_eq!(a.target, b.target, "threads {threads} batch {k}");
            assert_eq!(a.control, b.control, "threads {threads} batch {k}");
        }
    }
    // A different seed gives different batches.
    let mut c = cfg(0);
    c.seed = 8;
    let other = take(&mut Sampler::new(store.clone(), all_groups(&store), c).unwrap(), 7);
    assert_ne!(
        reference.iter().map(|b| b.target.clone()).collect::<Vec<_>>(),
        other.iter().map(|b| b.target.clone()).collect::<Vec<_>>()
    );
}

#[test]
fn resume_from_start_batch_continues_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(build_standard(dir.path()));
    let full = take(&mut Sampler::new(store.clone(), all_groups(&store), cfg(2)).unwrap(), 6);
    let mut c = cfg(2);
    c.start_batch = 4;
    let tail = take(&mut Sampler::new(store.clone(), all_groups(&store), c).unwrap(), 2);
    assert_eq!(full[4].target, tail[0].target);
    assert_eq!(full[5].control, tail[1].control);
}

#[test]
fn sets_come_from_their_group_and_matched_controls() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(build_standard(dir.path()));
    let m = store.manifest().clone();
    let mut sampler = Sampler::new(store.clone(), all_groups(&store), cfg(2)).unwrap();
    assert_eq!(
        sampler.n_fallback_groups(),
        1,
        "only (B, GENE3, b2) lacks batch-matched controls"
    );
    // 5 perturbed groups of 4,5,2,3,3 cells → slots 1+1+1+1+1 = 5 → 2 batches of 4 per epoch.
    assert_eq!(sampler.batches_per_epoch(), 2);
    let g = store.n_features();
    let mut seen_perts = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let b = sampler.next_batch().unwrap().clone();
        assert_eq!((b.n_sets, b.set_size, b.n_features), (4, 5, g));
        for i in 0..4 {
            assert_ne!(b.pert[i], m.control_pert);
            seen_perts.insert(b.pert[i]);
            for s in 0..5 {
                let t = &b.target[(i * 5 + s) * g..(i * 5 + s + 1) * g];
                let c = &b.control[(i * 5 + s) * g..(i * 5 + s + 1) * g];
                let t_rows = rows_matching(&store, t);
                assert!(
                    t_rows.iter().any(|&r| {
                        let gi = m
                            .groups
                            .iter()
                            .find(|gi| gi.offset <= r as u64 && (r as u64) < gi.offset + gi.n_cells)
                            .unwrap();
                        gi.pert == b.pert[i] && gi.context == b.context[i] && gi.batch == b.batch[i]
                    }),
                    "target cell from its group"
                );
                let c_rows = rows_matching(&store, c);
                assert!(
                    c_rows.iter().any(|&r| {
                        let gi = m
                            .groups
                            .iter()
                            .find(|gi| gi.offset <= r as u64 && (r as u64) < gi.offset + gi.n_cells)
                            .unwrap();
                        let batch_ok = gi.batch == b.batch[i] || m.perts[b.pert[i] as usize] == "GENE3";
                        gi.pert == m.control_pert && gi.context == b.context[i] && batch_ok
                    }),
                    "control cell from the same context (and batch)"
                );
            }
        }
        assert!(sampler.epoch() <= 2);
    }
    assert_eq!(seen_perts.len(), 3, "every perturbation appears within three epochs");
    let st = sampler.stats();
    assert!(st.fallback_sets >= 3, "GENE3's set appears once per epoch: {st:?}");
}

#[test]
fn small_groups_are_resampled_with_replacement_and_large_ones_without() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(build_standard(dir.path()));
    let m = store.manifest().clone();
    // (A, GENE2, b2) has 2 cells; (B, GENE1, b1) has 5.
    let small = m.groups.iter().position(|g| g.n_cells == 2).unwrap();
    let large = m
        .groups
        .iter()
        .position(|g| g.n_cells == 5 && g.pert != m.control_pert)
        .unwrap();
    let g = store.n_features();
    for (grp, distinct) in [(small, 2), (large, 5)] {
        let mut c = cfg(0);
        c.n_sets = 1;
        let mut s = Sampler::new(store.clone(), vec![grp], c).unwrap();
        let b = s.next_batch().unwrap();
        let mut rows: Vec<Vec<u32>> = (0..5)
            .map(|k| b.target[k * g..(k + 1) * g].iter().map(|v| v.to_bits()).collect())
            .collect();
        rows.sort();
        rows.dedup();
        assert!(rows.len() <= distinct);
        if distinct == 5 {
            assert_eq!(rows.len(), 5, "S = n draws every cell once");
        }
    }
}

#[test]
fn identity_sets_are_controls_as_their_own_targets() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(build_standard(dir.path()));
    let mut c = cfg(1);
    c.identity_fraction = 1.0;
    let mut s = Sampler::new(store.clone(), all_groups(&store), c).unwrap();
    let b = s.next_batch().unwrap();
    assert!(b.pert.iter().all(|&p| p == store.manifest().control_pert));
    assert_eq!(b.target, b.control);
    assert_eq!(s.stats().identity_sets % 4, 0);
    // Without control groups in the list, identity sets are impossible and perturbed-only lists work.
    let perturbed: Vec<usize> = (0..store.n_groups())
        .filter(|&g| !store.manifest().is_control_group(g))
        .collect();
    let mut c = cfg(0);
    c.identity_fraction = 0.5;
    let mut s = Sampler::new(store.clone(), perturbed, c).unwrap();
    assert!(s
        .next_batch()
        .unwrap()
        .pert
        .iter()
        .all(|&p| p != store.manifest().control_pert));
}

#[test]
fn bad_configs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(build_standard(dir.path()));
    let mut c = cfg(0);
    c.set_size = 0;
    assert!(Sampler::new(store.clone(), all_groups(&store), c).is_err());
    let controls: Vec<usize> = (0..store.n_groups())
        .filter(|&g| store.manifest().is_control_group(g))
        .collect();
    assert!(Sampler::new(store.clone(), controls, cfg(0)).is_err());
    assert!(Sampler::new(store.clone(), vec![999], cfg(0)).is_err());
}

#[test]
fn releasing_mapped_pages_does_not_change_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(build_standard(dir.path()));
    store.set_page_budget(0);
    let kept = take(&mut Sampler::new(store.clone(), all_groups(&store), cfg(2)).unwrap(), 5);
    // Release after every set: every read faults the pages back in from the page cache.
    store.set_page_budget(1);
    let released = take(&mut Sampler::new(store.clone(), all_groups(&store), cfg(2)).unwrap(), 5);
    for (a, b) in kept.iter().zip(&released) {
        assert_eq!(a.target, b.target);
        assert_eq!(a.control, b.control);
    }
    assert_eq!(
        store.read_group_dense(0).unwrap().n_rows as u64,
        store.manifest().groups[0].n_cells
    );
}
