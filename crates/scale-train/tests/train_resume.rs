//! End-to-end tests of the training loop on a small synthetic problem: the loss falls, a resumed run
//! equals an uninterrupted one bit for bit, and a run directory predicts.

use scale_model::burn::tensor::Device;
use scale_model::PertEncoder;
use scale_train::predict::{ControlPool, CountRounding, Engine, PredictRequest, Predictor};
use scale_train::{BatchSource, DataContract, FitOptions, InMemorySource, MetricLine, TrainConfig, Trainer};

mod common;
use common::{data, G};

const PRESET: &str = r#"
[model]
hidden = 32
n_layers = 2
n_heads = 4
mlp_hidden = 64
encoder_layers = 2
[data]
set_size = 8
n_sets = 4
[loss]
w_mse = 1.0
w_energy = 0.5
[transport]
mode = "endpoint"
euler_steps = 2
[train]
steps = 8
lr = 3e-3
warmup_steps = 2
seed = 7
val_every = 4
val_batches = 2
checkpoint_every = 3
"#;

fn sources(cfg: &TrainConfig) -> (InMemorySource, InMemorySource, DataContract, Vec<Vec<f32>>) {
    let (contract, groups, controls) = data(1);
    let train = InMemorySource::new(
        G,
        groups.clone(),
        controls.clone(),
        cfg.data.n_sets,
        cfg.data.set_size,
        11,
    )
    .unwrap();
    let val = InMemorySource::new(G, groups, controls.clone(), cfg.data.n_sets, cfg.data.set_size, 99).unwrap();
    (train, val, contract, controls)
}

fn new_run(dir: &std::path::Path, cfg: &TrainConfig, contract: DataContract) -> Trainer {
    let enc = PertEncoder::one_hot(&contract.perts, &contract.control_pert);
    Trainer::create(dir, cfg.clone(), contract, &enc, &Device::flex()).unwrap()
}

/// Safetensors: 8-byte header length, JSON header (metadata order is not stable), tensor bytes.
fn split_safetensors(b: Vec<u8>) -> (serde_json::Value, Vec<u8>) {
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    (header, b[8 + n..].to_vec())
}

#[test]
fn resumed_run_matches_uninterrupted_run_bit_for_bit() {
    let cfg = TrainConfig::from_toml_str(PRESET, "preset").unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // Uninterrupted.
    let (mut train, mut val, contract, _) = sources(&cfg);
    let mut full = new_run(&tmp.path().join("full"), &cfg, contract.clone());
    full.fit(&mut train, Some(&mut val), FitOptions::default()).unwrap();
    assert_eq!(full.step_index(), 8);

    // Interrupted after 5 steps (mid checkpoint interval: the checkpoint at stop is what resumes).
    let (mut train, mut val, contract, _) = sources(&cfg);
    let dir = tmp.path().join("split");
    let mut first = new_run(&dir, &cfg, contract);
    first
        .fit(
            &mut train,
            Some(&mut val),
            FitOptions {
                stop_at: Some(5),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(first.step_index(), 5);
    drop(first);
    let (mut train, mut val, _, _) = sources(&cfg);
    let (mut second, state) = Trainer::resume(&dir, &Device::flex(), None).unwrap();
    assert_eq!(state.step, 5);
    train.restore(&state.sampler).unwrap();
    second.fit(&mut train, Some(&mut val), FitOptions::default()).unwrap();
    assert_eq!(second.step_index(), 8);

    let (ha, da) = split_safetensors(full.weights_bytes().unwrap());
    let (hb, db) = split_safetensors(second.weights_bytes().unwrap());
    assert_eq!(ha, hb);
    assert!(da == db, "resumed weights differ");
    let losses = |t: &Trainer| -> Vec<f64> {
        t.history()
            .iter()
            .filter_map(|m| {
                if let MetricLine::Train(s) = m {
                    Some(s.loss)
                } else {
                    None
                }
            })
            .collect()
    };
    assert_eq!(losses(&full), losses(&second));
    // The run directory is self-describing.
    for f in [
        "config.toml",
        "model.toml",
        "contract.json",
        "metrics.jsonl",
        "checkpoint/model.safetensors",
        "checkpoint/optimizer.bpk",
        "checkpoint/state.json",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    // A second create in the same directory is refused.
    let (_, _, contract, _) = sources(&cfg);
    let enc = PertEncoder::one_hot(&contract.perts, &contract.control_pert);
    assert!(Trainer::create(&dir, cfg.clone(), contract, &enc, &Device::flex()).is_err());
}

#[test]
fn training_reduces_the_loss_and_the_run_predicts() {
    let mut cfg = TrainConfig::from_toml_str(PRESET, "preset").unwrap();
    cfg.train.steps = 150;
    cfg.train.val_every = 0;
    cfg.train.checkpoint_every = 0;
    let (mut train, mut val, contract, controls) = sources(&cfg);
    let tmp = tempfile::tempdir().unwrap();
    let mut t = new_run(tmp.path(), &cfg, contract);
    let before = t.validate(&mut val, 4).unwrap();
    let report = t.fit(&mut train, None, FitOptions::default()).unwrap();
    let (_, mut val, _, _) = sources(&cfg);
    let after = t.validate(&mut val, 4).unwrap();
    assert!(report.steps_run == 150);
    assert!(
        after.loss < 0.5 * before.loss,
        "val loss {} -> {}",
        before.loss,
        after.loss
    );
    assert!(after.pearson_delta > 0.8, "pearson_delta {}", after.pearson_delta);

    let pred = Predictor::open(tmp.path(), &Device::flex()).unwrap();
    let pools: Vec<ControlPool> = controls
        .iter()
        .enumerate()
        .map(|(i, c)| ControlPool {
            context: format!("c{i}"),
            batch: None,
            cells: c.clone(),
        })
        .collect();
    let reqs = vec![
        PredictRequest {
            pert: "A".into(),
            context: "c0".into(),
            batch: None,
            dose: None,
            n_cells: 13,
        },
        PredictRequest {
            pert: "A+B".into(),
            context: "c1".into(),
            batch: None,
            dose: None,
            n_cells: 8,
        },
    ];
    let out = pred.predict(&reqs, &pools, 3).unwrap();
    assert_eq!(out[0].len(), 13 * G);
    assert_eq!(out[1].len(), 8 * G);
    assert!(out.iter().flatten().all(|v| v.is_finite() && *v >= 0.0));
    // A raises genes 0..4 by 1.5 over controls: the predicted mean shift should show it.
    let mean = |m: &[f32], j: usize| m.chunks(G).map(|r| r[j]).sum::<f32>() / (m.len() / G) as f32;
    let ctrl0 = &controls[0];
    assert!(
        mean(&out[0], 0) - mean(ctrl0, 0) > 0.75,
        "gene 0 shift {}",
        mean(&out[0], 0) - mean(ctrl0, 0)
    );
    assert!((mean(&out[0], 5) - mean(ctrl0, 5)).abs() < 0.5);
    // Unknown perturbations fail with a named error.
    let bad = vec![PredictRequest {
        pert: "Z".into(),
        context: "c0".into(),
        batch: None,
        dose: None,
        n_cells: 2,
    }];
    let e = pred.predict(&bad, &pools, 3).unwrap_err().to_string();
    assert!(e.contains("\"Z\""), "{e}");

    // The fused CPU engine (the default) and burn's operators predict the same cells (same control
    // draws, K = 2 Euler steps), up to float32 rounding.
    let mut pred = pred;
    pred.count_rounding = CountRounding::Off;
    assert_eq!(pred.engine, Engine::Fused);
    let fused = pred.predict(&reqs, &pools, 3).unwrap();
    pred.engine = Engine::Burn;
    let burn = pred.predict(&reqs, &pools, 3).unwrap();
    let worst = fused
        .iter()
        .flatten()
        .zip(burn.iter().flatten())
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "fused vs burn engine: worst difference {worst}");

    // The run integrates in 2 Euler steps; one step (the direct map of the endpoint model) is another
    // prediction from the same control draws, and 0 steps is a named error.
    assert_eq!(pred.euler_steps(), 2);
    pred.engine = Engine::Fused;
    pred.set_euler_steps(1).unwrap();
    assert_eq!(pred.euler_steps(), 1);
    let one_step = pred.predict(&reqs, &pools, 3).unwrap();
    assert_eq!(one_step[0].len(), fused[0].len());
    assert_ne!(one_step, fused);
    let e = pred.set_euler_steps(0).unwrap_err().to_string();
    assert!(e.contains("at least 1"), "{e}");
}

#[test]
fn a_direct_map_run_refuses_more_than_one_euler_step() {
    let preset = PRESET.replace("mode = \"endpoint\"", "mode = \"direct\"");
    let mut cfg = TrainConfig::from_toml_str(&preset, "preset").unwrap();
    cfg.train.steps = 2;
    cfg.train.val_every = 0;
    cfg.train.checkpoint_every = 0;
    let (mut train, _, contract, _) = sources(&cfg);
    let tmp = tempfile::tempdir().unwrap();
    new_run(tmp.path(), &cfg, contract)
        .fit(&mut train, None, FitOptions::default())
        .unwrap();
    let mut pred = Predictor::open(tmp.path(), &Device::flex()).unwrap();
    // the run's own euler_steps (2 in the preset) does not apply to the direct map
    assert_eq!(pred.euler_steps(), 1);
    pred.set_euler_steps(1).unwrap();
    let e = pred.set_euler_steps(3).unwrap_err().to_string();
    assert!(e.contains("direct map"), "{e}");
}

#[test]
fn ot_coupling_pairs_cells_closer_and_resumes_bit_for_bit() {
    let ot_preset = PRESET.replace("euler_steps = 2", "euler_steps = 2\ncoupling = \"ot\"");
    let ot_cfg = TrainConfig::from_toml_str(&ot_preset, "preset").unwrap();
    let indep_cfg = TrainConfig::from_toml_str(PRESET, "preset").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // Same weights, same batch, same path times: only the pairing differs. At initialisation the
    // prediction is close to z_t, so the endpoint MSE mostly measures |z0 - z1| over the pairs,
    // which the optimal assignment makes smaller.
    let (mut train, _, contract, _) = sources(&indep_cfg);
    let batch = train.next_batch().unwrap().clone();
    let mut indep = new_run(&tmp.path().join("indep"), &indep_cfg, contract.clone());
    let mut ot = new_run(&tmp.path().join("ot"), &ot_cfg, contract);
    let (a, b) = (indep.train_step(&batch).unwrap(), ot.train_step(&batch).unwrap());
    assert!(b.mse < a.mse, "ot mse {} !< independent mse {}", b.mse, a.mse);
    assert_ne!(a.loss, b.loss);

    // The pairing is deterministic: an interrupted OT run resumes to the same weights.
    let run = |dir: &std::path::Path, stop: Option<u64>| {
        let (mut train, mut val, contract, _) = sources(&ot_cfg);
        let mut t = new_run(dir, &ot_cfg, contract);
        t.fit(
            &mut train,
            Some(&mut val),
            FitOptions {
                stop_at: stop,
                ..Default::default()
            },
        )
        .unwrap();
        t
    };
    let full = run(&tmp.path().join("full"), None);
    drop(run(&tmp.path().join("split"), Some(5)));
    let (mut train, mut val, _, _) = sources(&ot_cfg);
    let (mut second, state) = Trainer::resume(&tmp.path().join("split"), &Device::flex(), None).unwrap();
    train.restore(&state.sampler).unwrap();
    second.fit(&mut train, Some(&mut val), FitOptions::default()).unwrap();
    let (ha, da) = split_safetensors(full.weights_bytes().unwrap());
    let (hb, db) = split_safetensors(second.weights_bytes().unwrap());
    assert_eq!(ha, hb);
    assert!(da == db, "resumed OT weights differ");
}
