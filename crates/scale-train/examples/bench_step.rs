//! Times training steps and inference of the transport model on synthetic in-memory sets, without
//! the store: the model-step-alone figure (STATE's equivalent: `state_bench.py`'s model step).
//!
//! cargo run --release -p scale-train --example bench_step -- configs/state-tiny-bench.toml 2000 2 100
//! (preset, genes, threads, timed steps)

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use scale_model::burn::tensor::Device;
use scale_model::PertEncoder;
use scale_train::predict::{ControlPool, PredictRequest, Predictor};
use scale_train::{BatchSource, DataContract, InMemorySource, MemGroup, TrainConfig, Trainer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let preset = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("configs/state-tiny-bench.toml");
    let g: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let threads: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(2);
    let steps: u64 = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(100);
    scale_train::set_threads(threads);
    let mut cfg = TrainConfig::from_file(std::path::Path::new(preset))?;
    let warmup = 10;
    cfg.train.steps = steps + warmup;
    cfg.train.val_every = 0;
    cfg.train.checkpoint_every = 0;

    // 20 perturbations x 2 contexts, 200 cells each, log1p-like sparse values.
    let mut rng = StdRng::seed_from_u64(0);
    let mut cell = |shift: usize| -> Vec<f32> {
        (0..g)
            .map(|j| {
                if rng.gen::<f32>() < 0.2 {
                    rng.gen_range(0.5..3.0) + if j % 20 == shift { 1.0 } else { 0.0 }
                } else {
                    0.0
                }
            })
            .collect()
    };
    let n_perts = 20;
    let mut groups = Vec::new();
    let mut controls = Vec::new();
    for c in 0..2u32 {
        controls.push((0..400).flat_map(|_| cell(99)).collect::<Vec<f32>>());
        for p in 1..=n_perts {
            groups.push(MemGroup {
                pert: p as u32,
                context: c,
                batch: 0,
                cells: (0..200).flat_map(|_| cell(p)).collect(),
            });
        }
    }
    let mut perts = vec!["ctrl".to_string()];
    perts.extend((1..=n_perts).map(|p| format!("P{p}")));
    let contract = DataContract {
        genes: (0..g).map(|j| format!("g{j}")).collect(),
        space: "log1p".into(),
        perts: perts.clone(),
        control_pert: "ctrl".into(),
        contexts: vec!["c0".into(), "c1".into()],
        batches: vec!["b0".into()],
        pert_col: "target_gene".into(),
        context_col: "cell_type".into(),
        batch_col: None,
        dose_col: None,
        pert_encoding: scale_model::PertEncoding::OneHot,
        pert_components: vec![],
        pert_features_file: None,
    };
    let enc = PertEncoder::one_hot(&perts, "ctrl");
    let dir = tempfile::tempdir()?;
    let mut source = InMemorySource::new(g, groups, controls.clone(), cfg.data.n_sets, cfg.data.set_size, 1)?;
    let mut trainer = Trainer::create(dir.path(), cfg.clone(), contract, &enc, &Device::flex())?;
    for _ in 0..warmup {
        let b = source.next_batch()?.clone();
        trainer.train_step(&b)?;
    }
    // Batches are drawn outside the timed region: this is the model step alone.
    let batches: Vec<_> = (0..steps)
        .map(|_| source.next_batch().map(|b| b.clone()))
        .collect::<Result<_, _>>()?;
    let t0 = Instant::now();
    let mut last = 0.0;
    for b in &batches {
        last = trainer.train_step(b)?.loss;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cells = (cfg.data.n_sets * cfg.data.set_size) as f64;
    println!(
        "train step: {steps} steps in {secs:.2} s = {:.2} it/s, {:.0} cells/s (B={} S={} G={g}, {threads} threads), last loss {last:.4}",
        steps as f64 / secs,
        steps as f64 * cells / secs,
        cfg.data.n_sets,
        cfg.data.set_size
    );
    trainer.save_checkpoint(source.state())?;

    // Inference: 64 requests of 256 cells.
    let pred = Predictor::open(dir.path(), &Device::flex())?;
    let pools: Vec<ControlPool> = controls
        .into_iter()
        .enumerate()
        .map(|(i, cells)| ControlPool {
            context: format!("c{i}"),
            batch: None,
            cells,
        })
        .collect();
    let reqs: Vec<PredictRequest> = (0..64)
        .map(|i| PredictRequest {
            pert: format!("P{}", i % n_perts + 1),
            context: format!("c{}", i % 2),
            batch: None,
            dose: None,
            n_cells: 256,
        })
        .collect();
    pred.predict(&reqs[..4], &pools, 0)?; // warm-up
    let t0 = Instant::now();
    let out = pred.predict(&reqs, &pools, 0)?;
    let secs = t0.elapsed().as_secs_f64();
    let n: usize = out.iter().map(|o| o.len() / g).sum();
    println!(
        "inference: {n} cells in {secs:.2} s = {:.0} cells/s ({} Euler steps)",
        n as f64 / secs,
        pred.euler_steps()
    );
    Ok(())
}
