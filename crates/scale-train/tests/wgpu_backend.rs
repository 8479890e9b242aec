//! The wgpu backend against the CPU (flex) backend, on a small synthetic problem. Runs only in a build
//! with the `wgpu` feature (`cargo test -p scale-train --features wgpu --test wgpu_backend`) on a machine
//! with a wgpu adapter (a Vulkan driver; Mesa's software lavapipe counts); otherwise it prints why and
//! passes.
//!
//! Both devices start from one CPU-made checkpoint (so the test does not depend on the backends' RNGs
//! drawing the same initial weights): forward passes of it must agree within float tolerance, and
//! training resumed from it on both devices (same batches, same path times) must give close, finite,
//! falling losses.

use std::path::Path;

use scale_model::burn::tensor::Device;
use scale_model::{wgpu_adapter_available, DeviceChoice, PertEncoder};
use scale_train::predict::{ControlPool, PredictRequest, Predictor};
use scale_train::{BatchSource, FitOptions, InMemorySource, MetricLine, TrainConfig, Trainer};

mod common;
use common::{data, G};
/// Steps on the CPU before the checkpoint both devices resume from.
const WARM: u64 = 3;
const STEPS: u64 = 40;

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
steps = 40
lr = 3e-3
warmup_steps = 2
seed = 7
val_every = 0
checkpoint_every = 0
"#;

/// The wgpu device, or `None` (with the reason printed) where this build or machine has none.
fn wgpu_or_skip() -> Option<Device> {
    if !DeviceChoice::Wgpu.is_compiled() {
        eprintln!("skipped: built without the `wgpu` feature (cargo test --features wgpu)");
        return None;
    }
    if !wgpu_adapter_available() {
        eprintln!(
            "skipped: no wgpu adapter on this machine (no Vulkan driver; e.g. apt-get install mesa-vulkan-drivers)"
        );
        return None;
    }
    Some(DeviceChoice::Wgpu.device().expect("wgpu device"))
}

fn train_source(cfg: &TrainConfig) -> InMemorySource {
    let (_, groups, controls) = data(1);
    InMemorySource::new(G, groups, controls, cfg.data.n_sets, cfg.data.set_size, 11).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Resumes the run in `dir` on `device` and trains it to the end; the per-step training losses.
fn resume_losses(dir: &Path, device: &Device, cfg: &TrainConfig) -> Vec<f64> {
    let (mut t, state) = Trainer::resume(dir, device, None).unwrap();
    assert_eq!(state.step, WARM);
    let mut src = train_source(cfg);
    src.restore(&state.sampler).unwrap();
    t.fit(&mut src, None, FitOptions::default()).unwrap();
    t.history()
        .iter()
        .filter_map(|m| match m {
            MetricLine::Train(s) if s.step >= WARM => Some(s.loss),
            _ => None,
        })
        .collect()
}

#[test]
fn wgpu_forward_and_training_agree_with_cpu() {
    let Some(gpu) = wgpu_or_skip() else { return };
    let cpu = Device::flex();
    let cfg = TrainConfig::from_toml_str(PRESET, "preset").unwrap();
    assert_eq!(cfg.train.steps, STEPS);
    let (contract, _, controls) = data(1);
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let enc = PertEncoder::one_hot(&contract.perts, &contract.control_pert);
    let mut t = Trainer::create(&base, cfg.clone(), contract, &enc, &cpu).unwrap();
    let opts = FitOptions {
        stop_at: Some(WARM),
        ..Default::default()
    };
    t.fit(&mut train_source(&cfg), None, opts).unwrap();
    drop(t);

    // Forward (Euler sampler, 2 steps) of the same checkpoint on both devices.
    let pools: Vec<ControlPool> = controls
        .iter()
        .enumerate()
        .map(|(i, c)| ControlPool {
            context: format!("c{i}"),
            batch: None,
            cells: c.clone(),
        })
        .collect();
    let reqs: Vec<PredictRequest> = [("A", "c0", 13), ("A+B", "c1", 8), ("B", "c1", 16)]
        .iter()
        .map(|&(p, c, n)| PredictRequest {
            pert: p.into(),
            context: c.into(),
            batch: None,
            dose: None,
            n_cells: n,
        })
        .collect();
    let on_cpu = Predictor::open(&base, &cpu).unwrap().predict(&reqs, &pools, 3).unwrap();
    let on_gpu = Predictor::open(&base, &gpu).unwrap().predict(&reqs, &pools, 3).unwrap();
    let mut max_diff = 0f32;
    for (a, b) in on_cpu.iter().flatten().zip(on_gpu.iter().flatten()) {
        assert!(b.is_finite());
        max_diff = max_diff.max((a - b).abs());
    }
    assert_eq!(
        on_cpu.iter().map(Vec::len).sum::<usize>(),
        on_gpu.iter().map(Vec::len).sum::<usize>()
    );
    eprintln!("forward: max |cpu - wgpu| = {max_diff:e} (values ~1-3)");
    assert!(max_diff < 1e-3, "forward differs between cpu and wgpu by {max_diff}");

    // Training resumed from the checkpoint on both devices.
    let (dir_cpu, dir_gpu) = (tmp.path().join("cpu"), tmp.path().join("gpu"));
    copy_dir(&base, &dir_cpu);
    copy_dir(&base, &dir_gpu);
    let l_cpu = resume_losses(&dir_cpu, &cpu, &cfg);
    let l_gpu = resume_losses(&dir_gpu, &gpu, &cfg);
    assert_eq!(l_gpu.len() as u64, STEPS - WARM);
    assert!(l_gpu.iter().all(|l| l.is_finite()), "{l_gpu:?}");
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (first, last) = (mean(&l_gpu[..8]), mean(&l_gpu[l_gpu.len() - 8..]));
    eprintln!(
        "wgpu loss: first 8 steps {first:.4}, last 8 {last:.4}; cpu: {:.4}, {:.4}",
        mean(&l_cpu[..8]),
        mean(&l_cpu[l_cpu.len() - 8..])
    );
    assert!(last < 0.8 * first, "wgpu loss did not fall: {l_gpu:?}");
    let rel = |a: f64, b: f64| (a - b).abs() / a.abs().max(1e-6);
    // First step: same weights, same batch; only float rounding differs.
    assert!(
        rel(l_cpu[0], l_gpu[0]) < 1e-4,
        "step {WARM}: cpu {} wgpu {}",
        l_cpu[0],
        l_gpu[0]
    );
    let worst = l_cpu.iter().zip(&l_gpu).map(|(&a, &b)| rel(a, b)).fold(0.0, f64::max);
    eprintln!(
        "per-step loss: max relative |cpu - wgpu| = {worst:e} over {} steps",
        l_cpu.len()
    );
    assert!(worst < 0.05, "losses drift apart: cpu {l_cpu:?} wgpu {l_gpu:?}");
}
