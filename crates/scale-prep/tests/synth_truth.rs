//! Statistical checks of the synthetic generator against its own ground truth: knock-downs, null
//! perturbations, effect recovery, dose response, combinations, and thread-count independence.

use scale_io::CsrMatrix;
use scale_prep::synth::{CellLabels, PertKind, SynthConfig, SynthModel, CONTROL};

fn generate(model: &SynthModel) -> (CsrMatrix, CellLabels) {
    let mut all = CsrMatrix::empty(model.cfg.n_genes);
    let mut max_block = 0;
    let labels = model
        .generate(
            |b: CsrMatrix| -> Result<(), ()> {
                max_block = max_block.max(b.n_rows);
                for r in 0..b.n_rows {
                    let (c, v) = b.row(r);
                    all.push_row(c, v);
                }
                Ok(())
            },
            |_| {},
        )
        .unwrap();
    assert!(
        max_block <= model.cfg.block_size,
        "sink got a block larger than block_size"
    );
    assert_eq!(all.n_rows, model.cfg.n_cells);
    (all, labels)
}

/// Mean of counts / library size per gene over the cells accepted by `keep`. Shape `[n_genes]`.
fn norm_mean(x: &CsrMatrix, labels: &CellLabels, keep: impl Fn(usize) -> bool) -> (Vec<f64>, usize) {
    let mut s = vec![0f64; x.n_cols];
    let mut n = 0;
    for r in 0..x.n_rows {
        if !keep(r) {
            continue;
        }
        n += 1;
        let (c, v) = x.row(r);
        let lib = labels.library[r] as f64;
        for (&j, &val) in c.iter().zip(v) {
            s[j as usize] += val as f64 / lib;
        }
    }
    (s.into_iter().map(|v| v / n.max(1) as f64).collect(), n)
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma) * (x - ma)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb) * (y - mb)).sum();
    cov / (va * vb).sqrt()
}

fn base_config() -> SynthConfig {
    SynthConfig {
        n_cells: 40_000,
        n_genes: 300,
        n_perts: 10,
        n_contexts: 2,
        n_batches: 2,
        null_fraction: 0.3,
        seed: 11,
        block_size: 1000,
        ..Default::default()
    }
}

#[test]
fn knockdown_nulls_and_effects_match_truth() {
    let model = SynthModel::new(base_config()).unwrap();
    let (x, labels) = generate(&model);
    assert!(
        x.data.iter().all(|v| v.fract() == 0.0 && *v > 0.0),
        "counts must be positive integers"
    );
    let density = x.nnz() as f64 / (x.n_rows * x.n_cols) as f64;
    assert!(density > 0.02 && density < 0.9, "implausible density {density}");
    let n_null = model
        .perts
        .iter()
        .filter(|p| p.kind == PertKind::Genetic && p.is_null)
        .count();
    let n_live = model
        .perts
        .iter()
        .filter(|p| p.kind == PertKind::Genetic && !p.is_null)
        .count();
    assert!(
        n_null >= 1 && n_live >= 3,
        "seed should give both null and live perturbations"
    );

    for c in 0..model.cfg.n_contexts {
        let (ctrl, n_ctrl) = norm_mean(&x, &labels, |r| labels.pert[r] == 0 && labels.context[r] as usize == c);
        assert!(n_ctrl > 1000);
        for (p, pert) in model
            .perts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.kind == PertKind::Genetic)
        {
            let (m, n) = norm_mean(&x, &labels, |r| {
                labels.pert[r] as usize == p && labels.context[r] as usize == c
            });
            assert!(n > 1000, "{}: {n} cells", pert.name);
            let truth = model.effect(p, c, 0.0);
            let t = pert.target.unwrap();
            let est_t = (m[t] / ctrl[t]).ln();
            if pert.is_null {
                assert!(truth.iter().all(|&e| e == 0.0), "null perturbation with an effect");
                assert!(est_t.abs() < 0.15, "{}: null target moved by {est_t}", pert.name);
                // no gene moves beyond noise (well-expressed genes only)
                for g in 0..x.n_cols {
                    if ctrl[g] * model.cfg.lib_median > 2.0 {
                        let lfc = (m[g] / ctrl[g]).ln();
                        assert!(lfc.abs() < 0.2, "{}: null moved gene {g} by {lfc}", pert.name);
                    }
                }
            } else {
                // on-target: the measured fold change matches the truth (knock-down plus any program
                // effect on that gene), and the target is clearly down
                assert!(
                    (est_t - truth[t]).abs() < 0.2,
                    "{} ctx {c}: target lfc {est_t} vs truth {}",
                    pert.name,
                    truth[t]
                );
                assert!(
                    est_t < (0.5f64).ln(),
                    "{}: target not knocked down ({est_t})",
                    pert.name
                );
                // off-target effects are recovered
                let genes: Vec<usize> = (0..x.n_cols)
                    .filter(|&g| ctrl[g] * model.cfg.lib_median > 1.0 && truth[g] != 0.0)
                    .collect();
                assert!(genes.len() >= 5, "{}: too few affected expressed genes", pert.name);
                let est: Vec<f64> = genes.iter().map(|&g| (m[g] / ctrl[g]).ln()).collect();
                let tr: Vec<f64> = genes.iter().map(|&g| truth[g]).collect();
                let r = pearson(&est, &tr);
                assert!(r > 0.9, "{} ctx {c}: effect correlation {r}", pert.name);
            }
        }
    }
    // the truth table lists exactly the non-zero effects, and no row for null perturbations
    let mut csv = Vec::new();
    model.write_truth(&mut csv).unwrap();
    let text = String::from_utf8(csv).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    let expected: usize = model
        .effects
        .iter()
        .map(|pc| pc.iter().map(|v| v.len()).sum::<usize>())
        .sum();
    assert_eq!(rows.len(), expected);
    for p in model.perts.iter().filter(|p| p.is_null) {
        assert!(
            !rows.iter().any(|r| r.starts_with(&format!("{},", p.name))),
            "{} in truth",
            p.name
        );
    }
    let obs = model.obs_frame(&labels);
    assert_eq!(obs.len(), model.cfg.n_cells);
    assert_eq!(
        obs.column("target_gene")
            .unwrap()
            .get_str(labels.pert.iter().position(|&p| p == 0).unwrap())
            .as_deref(),
        Some(CONTROL)
    );
}

#[test]
fn contexts_differ_in_baseline_and_response() {
    let model = SynthModel::new(base_config()).unwrap();
    let p = model
        .perts
        .iter()
        .position(|p| p.kind == PertKind::Genetic && !p.is_null)
        .unwrap();
    let (e0, e1) = (model.effect(p, 0, 0.0), model.effect(p, 1, 0.0));
    assert!(
        e0.iter().zip(&e1).any(|(a, b)| (a - b).abs() > 0.05),
        "responses identical across contexts"
    );
    let d: f64 = model.share[0]
        .iter()
        .zip(&model.share[1])
        .map(|(a, b)| (a / b).ln().abs())
        .sum::<f64>();
    assert!(
        d / model.cfg.n_genes as f64 > 0.1,
        "baselines identical across contexts"
    );
}

#[test]
fn output_is_independent_of_thread_count_and_seeded() {
    let cfg = SynthConfig {
        n_cells: 5_000,
        n_genes: 200,
        n_perts: 8,
        drugs: true,
        combos: true,
        block_size: 300,
        ..Default::default()
    };
    let model = SynthModel::new(cfg.clone()).unwrap();
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| generate(&model))
    };
    let (a, la) = run(1);
    let (b, lb) = run(3);
    assert_eq!(a, b, "counts depend on the thread count");
    assert_eq!(la, lb, "labels depend on the thread count");
    let (c, _) = generate(&SynthModel::new(SynthConfig { seed: 1, ..cfg }).unwrap());
    assert_ne!(a, c, "a different seed gave the same data");
}

#[test]
fn drug_effects_follow_dose_and_combos_add() {
    let cfg = SynthConfig {
        n_cells: 60_000,
        n_genes: 200,
        n_perts: 10,
        n_contexts: 1,
        n_batches: 1,
        drugs: true,
        combos: true,
        null_fraction: 0.0,
        seed: 5,
        ..Default::default()
    };
    let model = SynthModel::new(cfg).unwrap();
    let (x, labels) = generate(&model);
    let (ctrl, _) = norm_mean(&x, &labels, |r| labels.pert[r] == 0);
    let expressed: Vec<usize> = (0..x.n_cols)
        .filter(|&g| ctrl[g] * model.cfg.lib_median > 1.0)
        .collect();

    let drug = model
        .perts
        .iter()
        .position(|p| p.kind == PertKind::Drug)
        .expect("a drug");
    let full = model.effect(drug, 0, 1e9);
    // genes the drug moves most strongly at full dose
    let mut strong: Vec<usize> = expressed.iter().copied().filter(|&g| full[g].abs() > 0.5).collect();
    strong.sort_by(|&a, &b| full[b].abs().total_cmp(&full[a].abs()));
    strong.truncate(10);
    assert!(strong.len() >= 3, "drug has too few strong effects");
    let mut mags = Vec::new();
    for &d in &scale_prep::synth::DRUG_DOSES {
        let (m, n) = norm_mean(&x, &labels, |r| {
            labels.pert[r] as usize == drug && labels.dose[r] == d as f32
        });
        assert!(n > 200, "dose {d}: {n} cells");
        let truth = model.effect(drug, 0, d);
        let est: f64 = strong
            .iter()
            .map(|&g| (m[g] / ctrl[g]).ln() * full[g].signum())
            .sum::<f64>()
            / strong.len() as f64;
        let want: f64 = strong.iter().map(|&g| truth[g] * full[g].signum()).sum::<f64>() / strong.len() as f64;
        assert!(
            (est - want).abs() < 0.15,
            "dose {d}: mean signed lfc {est} vs truth {want}"
        );
        mags.push(est);
    }
    assert!(mags[3] > mags[0] + 0.2, "no dose response: {mags:?}");

    let combo = model
        .perts
        .iter()
        .position(|p| p.kind == PertKind::Combo)
        .expect("a combo");
    let (a, b) = model.perts[combo].components.unwrap();
    let (ea, eb, ec) = (
        model.effect(a, 0, 0.0),
        model.effect(b, 0, 0.0),
        model.effect(combo, 0, 0.0),
    );
    assert!(
        (0..x.n_cols).all(|g| (ea[g] + eb[g] - ec[g]).abs() < 1e-12),
        "combo truth is not additive"
    );
    let (m, _) = norm_mean(&x, &labels, |r| labels.pert[r] as usize == combo);
    let genes: Vec<usize> = expressed.iter().copied().filter(|&g| ec[g] != 0.0).collect();
    let est: Vec<f64> = genes.iter().map(|&g| (m[g] / ctrl[g]).ln()).collect();
    let tr: Vec<f64> = genes.iter().map(|&g| ec[g]).collect();
    assert!(pearson(&est, &tr) > 0.9, "combo effects not recovered");
}
