//! The training loop: endpoint-transport steps with AdamW, warm-up + cosine schedule, global
//! gradient-norm clipping, validation, and atomic checkpoints that resume bit-for-bit.
//!
//! Determinism: weights are initialised from `train.seed`; the path times t of step i come from an
//! RNG seeded by (seed, i); batches come from a [`BatchSource`] whose position is checkpointed; the
//! optimizer state is checkpointed with name-derived parameter ids. A run stopped at step k and
//! resumed therefore computes exactly the steps an uninterrupted run computes.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use scale_model::burn::module::{Module, ModuleVisitor, Param};
use scale_model::burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use scale_model::burn::tensor::{Device, Int, Tensor, TensorData};
use scale_model::{
    transport_sets, weights, Conditions, DataDims, PertEncoder, TransportConfig, TransportInput, TransportModel,
};
use scale_store::SetBatch;
use serde::{Deserialize, Serialize};

use crate::config::{Mode, TrainConfig};
use crate::contract::{DataContract, FEATURES_FILE};
use crate::coupling::{ot_pair_sets, Coupling};
use crate::metrics::DeltaAccumulator;
use crate::source::BatchSource;
use crate::TrainError;

/// Run-directory file names.
pub mod files {
    /// Resolved training config (TOML).
    pub const CONFIG: &str = "config.toml";
    /// Network config with data sizes (TOML).
    pub const MODEL: &str = "model.toml";
    /// Data contract (JSON).
    pub const CONTRACT: &str = "contract.json";
    /// Checkpoint directory.
    pub const CHECKPOINT: &str = "checkpoint";
    /// Weights inside the checkpoint directory.
    pub const WEIGHTS: &str = "model.safetensors";
    /// Optimizer state (burnpack) inside the checkpoint directory.
    pub const OPTIMIZER: &str = "optimizer.bpk";
    /// Step, sampler position and seed inside the checkpoint directory.
    pub const STATE: &str = "state.json";
    /// Loss history, one JSON object per line.
    pub const METRICS: &str = "metrics.jsonl";
}

/// What a checkpoint records besides weights and optimizer state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointState {
    /// Optimiser steps completed.
    pub step: u64,
    /// The run's seed (checked on resume).
    pub seed: u64,
    /// Training sampler position.
    pub sampler: serde_json::Value,
}

/// Losses of one training step.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct StepStats {
    /// Step index (0-based) this was.
    pub step: u64,
    /// Weighted total loss.
    pub loss: f64,
    /// Endpoint MSE.
    pub mse: f64,
    /// Mean per-set energy distance.
    pub energy: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// Validation results (prediction by the inference sampler from the controls).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ValStats {
    /// Step after which this ran.
    pub step: u64,
    /// Weighted total loss of the predicted sets.
    pub loss: f64,
    /// Endpoint MSE.
    pub mse: f64,
    /// Mean per-set energy distance.
    pub energy: f64,
    /// Mean over (perturbation, context) of the Pearson correlation of pseudobulk deltas (predicted
    /// minus control vs real minus control), as cell-eval's `pearson_delta`.
    pub pearson_delta: f64,
    /// Sets evaluated.
    pub n_sets: usize,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetricLine {
    /// A training step.
    Train(StepStats),
    /// A validation pass.
    Val(ValStats),
}

/// Options of one `fit` call.
#[derive(Default)]
pub struct FitOptions {
    /// Stop after this many completed steps (the schedule still spans `train.steps`); a later
    /// `resume` continues. `None` = run to `train.steps`.
    pub stop_at: Option<u64>,
    /// Progress bar to update (hidden bars cost nothing).
    pub progress: Option<ProgressBar>,
}

/// Summary of a `fit` call.
#[derive(Debug, Clone)]
pub struct FitReport {
    /// Steps completed in total.
    pub step: u64,
    /// Steps run by this call.
    pub steps_run: u64,
    /// Wall time of this call's steps (s), data loading included.
    pub seconds: f64,
    /// Last training step's stats.
    pub last: Option<StepStats>,
    /// Last validation.
    pub last_val: Option<ValStats>,
}

/// A model being trained in a run directory.
pub struct Trainer {
    cfg: TrainConfig,
    tcfg: TransportConfig,
    contract: DataContract,
    device: Device,
    model: TransportModel,
    optim: ModuleOptimizer,
    /// Encodings of the training vocabulary, row-major [n_perts, P].
    pert_vocab: Vec<f32>,
    /// Whether each vocabulary entry has an encoding.
    pert_ok: Vec<bool>,
    step: u64,
    run_dir: PathBuf,
    history: Vec<MetricLine>,
}

impl Trainer {
    /// Starts a new run in `run_dir` (created; must not already hold a run). Writes the resolved
    /// config, the network config, the contract and (if any) the feature table copy.
    pub fn create(
        run_dir: &Path,
        cfg: TrainConfig,
        mut contract: DataContract,
        encoder: &PertEncoder,
        device: &Device,
    ) -> Result<Self, TrainError> {
        if run_dir.join(files::CONFIG).exists() {
            return Err(TrainError::Resume(format!(
                "{} already holds a run; pass --resume to continue it or choose another --out",
                run_dir.display()
            )));
        }
        match (&contract.dose_col, cfg.model.use_dose) {
            (None, true) => {
                return Err(TrainError::Data(
                    "model.use_dose is set but the store has no doses (ingest with --dose-col COLUMN)".into(),
                ))
            }
            (Some(col), false) => tracing::warn!(
                "the store has doses (obs `{col}`) but model.use_dose is off: sets at different doses of one \
                 perturbation get the same condition"
            ),
            _ => {}
        }
        std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
        contract.pert_encoding = encoder.encoding();
        match encoder {
            PertEncoder::OneHot { components, .. } => {
                contract.pert_components = components.clone();
                contract.pert_features_file = None;
            }
            PertEncoder::Features(table) => {
                contract.pert_components.clear();
                contract.pert_features_file = Some(FEATURES_FILE.to_string());
                write_atomic(&run_dir.join(FEATURES_FILE), table.to_csv().as_bytes())?;
            }
        }
        let tcfg = TransportConfig {
            model: cfg.model.clone(),
            dims: DataDims {
                n_genes: contract.genes.len(),
                pert_dim: encoder.dim(),
                pert_encoding: encoder.encoding(),
                n_contexts: contract.contexts.len(),
                n_batches: contract.batches.len(),
            },
        };
        let (pert_vocab, pert_ok) = contract.encode_vocab(encoder);
        let device = device.clone().autodiff();
        let model = tcfg.init_seeded(&device, cfg.train.seed)?;
        write_atomic(&run_dir.join(files::CONFIG), cfg.to_toml().as_bytes())?;
        write_atomic(&run_dir.join(files::MODEL), to_toml(&tcfg)?.as_bytes())?;
        write_atomic(&run_dir.join(files::CONTRACT), to_json(&contract)?.as_bytes())?;
        let optim = make_optimizer(&cfg);
        tracing::info!(params = n_params(&model), "model initialised");
        Ok(Self {
            cfg,
            tcfg,
            contract,
            device,
            model,
            optim,
            pert_vocab,
            pert_ok,
            step: 0,
            run_dir: run_dir.to_path_buf(),
            history: Vec::new(),
        })
    }

    /// Re-opens a run from its last checkpoint. Returns the trainer and the checkpointed state (to
    /// restore the sampler from). `steps` overrides `train.steps` (e.g. to extend a run).
    pub fn resume(run_dir: &Path, device: &Device, steps: Option<u64>) -> Result<(Self, CheckpointState), TrainError> {
        let mut cfg = TrainConfig::from_file(&run_dir.join(files::CONFIG))?;
        if let Some(n) = steps {
            cfg.train.steps = n;
        }
        let tcfg: TransportConfig = read_toml(&run_dir.join(files::MODEL))?;
        let contract = DataContract::read(&run_dir.join(files::CONTRACT))?;
        let encoder = contract.pert_encoder(run_dir)?;
        let (pert_vocab, pert_ok) = contract.encode_vocab(&encoder);
        let ckpt = checkpoint_dir(run_dir)?;
        let state: CheckpointState = read_json(&ckpt.join(files::STATE))?;
        if state.seed != cfg.train.seed {
            return Err(TrainError::Resume(format!(
                "checkpoint seed {} differs from config seed {}",
                state.seed, cfg.train.seed
            )));
        }
        let device = device.clone().autodiff();
        let model = weights::load(tcfg.init(&device)?, &ckpt.join(files::WEIGHTS))?;
        let opt_path = ckpt.join(files::OPTIMIZER);
        let bytes = std::fs::read(&opt_path).map_err(|e| TrainError::io(&opt_path, e))?;
        let optim = make_optimizer(&cfg)
            .from_bytes(scale_model::burn::tensor::Bytes::from_bytes_vec(bytes))
            .map_err(|e| TrainError::Resume(format!("{}: {e:?}", opt_path.display())))?;
        let history = read_history(&run_dir.join(files::METRICS))?;
        if cfg.train.steps < state.step {
            return Err(TrainError::Resume(format!(
                "the checkpoint is at step {}, past train.steps = {}",
                state.step, cfg.train.steps
            )));
        }
        tracing::info!(step = state.step, run = %run_dir.display(), "resuming");
        let trainer = Self {
            cfg,
            tcfg,
            contract,
            device,
            model,
            optim,
            pert_vocab,
            pert_ok,
            step: state.step,
            run_dir: run_dir.to_path_buf(),
            history,
        };
        Ok((trainer, state))
    }

    /// Steps completed.
    pub fn step_index(&self) -> u64 {
        self.step
    }

    /// The resolved config.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// The network config.
    pub fn transport_config(&self) -> &TransportConfig {
        &self.tcfg
    }

    /// The data contract.
    pub fn contract(&self) -> &DataContract {
        &self.contract
    }

    /// The model (autodiff device).
    pub fn model(&self) -> &TransportModel {
        &self.model
    }

    /// Loss history so far.
    pub fn history(&self) -> &[MetricLine] {
        &self.history
    }

    /// Uploads a batch: (z0, z1) [B, S, G] and the conditions; z1 is `target` (the batch's perturbed
    /// cells in the pairing's order).
    fn upload(
        &self,
        batch: &SetBatch,
        target: &[f32],
        device: &Device,
    ) -> Result<(Tensor<3>, Tensor<3>, Conditions), TrainError> {
        let (b, s, g) = (batch.n_sets, batch.set_size, batch.n_features);
        if g != self.tcfg.dims.n_genes {
            return Err(TrainError::Data(format!(
                "batch has {g} features, the model {}",
                self.tcfg.dims.n_genes
            )));
        }
        let n = b * s * g;
        if batch.control.len() != n || target.len() != n || batch.pert.len() != b || batch.context.len() != b {
            return Err(TrainError::Data(format!(
                "batch buffers do not match [B={b}, S={s}, G={g}]"
            )));
        }
        let p = self.tcfg.dims.pert_dim;
        let mut pert = Vec::with_capacity(b * p);
        for &pi in &batch.pert {
            let pi = pi as usize;
            if !self.pert_ok.get(pi).copied().unwrap_or(false) {
                return Err(TrainError::Data(format!(
                    "batch references perturbation {:?}, which has no encoding in this run",
                    self.contract.perts.get(pi).map(String::as_str).unwrap_or("?")
                )));
            }
            let row = self.pert_vocab.get(pi * p..(pi + 1) * p).ok_or_else(|| {
                TrainError::Data(format!(
                    "perturbation index {pi} outside the vocabulary of {}",
                    self.contract.perts.len()
                ))
            })?;
            pert.extend_from_slice(row);
        }
        for &c in &batch.context {
            if c as usize >= self.tcfg.dims.n_contexts {
                return Err(TrainError::Data(format!("context index {c} outside the vocabulary")));
            }
        }
        let z0 = Tensor::<3>::from_data(TensorData::new(batch.control.clone(), [b, s, g]), device);
        let z1 = Tensor::<3>::from_data(TensorData::new(target.to_vec(), [b, s, g]), device);
        let ints = |v: &[u32]| {
            Tensor::<1, Int>::from_data(
                TensorData::new(v.iter().map(|&x| x as i64).collect::<Vec<_>>(), [v.len()]),
                device,
            )
        };
        let batch_idx = if self.tcfg.model.use_batch {
            if let Some(&bad) = batch.batch.iter().find(|&&x| x as usize >= self.tcfg.dims.n_batches) {
                return Err(TrainError::Data(format!("batch index {bad} outside the vocabulary")));
            }
            Some(ints(&batch.batch))
        } else {
            None
        };
        let cond = Conditions {
            pert: Tensor::<2>::from_data(TensorData::new(pert, [b, p]), device),
            context: ints(&batch.context),
            batch: batch_idx,
            dose: self
                .tcfg
                .model
                .use_dose
                .then(|| Tensor::<1>::from_data(TensorData::new(batch.dose.clone(), [b]), device)),
        };
        Ok((z0, z1, cond))
    }

    /// Path times for step `step`: U(0,1) per set (endpoint) or 0 (direct).
    fn times(&self, step: u64, b: usize) -> Vec<f32> {
        match self.cfg.transport.mode {
            Mode::Direct => vec![0.0; b],
            Mode::Endpoint => {
                let mut rng = StdRng::seed_from_u64(
                    self.cfg.train.seed ^ step.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                (0..b).map(|_| rng.gen::<f32>()).collect()
            }
        }
    }

    /// The batch's perturbed cells [B, S, G], paired to its control cells as `transport.coupling`
    /// says: re-ordered per set for `ot`, as sampled (no copy) for `independent`.
    fn paired_target<'a>(&self, batch: &'a SetBatch) -> Cow<'a, [f32]> {
        match self.cfg.transport.coupling {
            Coupling::Independent => Cow::Borrowed(&batch.target),
            // a batch of the wrong shape is not paired: `upload` names what is wrong with it
            Coupling::Ot
                if batch.target.len() != batch.n_sets * batch.set_size * batch.n_features
                    || batch.control.len() != batch.target.len() =>
            {
                Cow::Borrowed(&batch.target)
            }
            Coupling::Ot => {
                let mut target = batch.target.clone();
                ot_pair_sets(
                    &batch.control,
                    &mut target,
                    batch.n_sets,
                    batch.set_size,
                    batch.n_features,
                );
                Cow::Owned(target)
            }
        }
    }

    /// One optimiser step on `batch`.
    pub fn train_step(&mut self, batch: &SetBatch) -> Result<StepStats, TrainError> {
        let device = self.device.clone();
        let (z0, z1, cond) = self.upload(batch, &self.paired_target(batch), &device)?;
        let b = batch.n_sets;
        let t = self.times(self.step, b);
        let t_tensor = Tensor::<1>::from_data(TensorData::new(t.clone(), [b]), &device);
        let z_t = match self.cfg.transport.mode {
            Mode::Direct => z0,
            Mode::Endpoint => {
                let t3 = t_tensor.clone().reshape([b, 1, 1]);
                z0.clone() + (z1.clone() - z0) * t3
            }
        };
        let input = TransportInput {
            z_t,
            t: t_tensor,
            pert: cond.pert,
            context: cond.context,
            batch: cond.batch,
            dose: cond.dose,
        };
        let pred = self.model.forward(input)?;
        let parts = self.cfg.loss.compute(pred, z1);
        let grads = parts.total.backward();
        let mut grads = GradientsParams::from_grads(grads, &self.model);
        let grad_norm = clip_global_norm(&self.model, &mut grads, self.cfg.train.grad_clip);
        let lr = self.cfg.lr_at(self.step);
        self.model = self.optim.step(lr, self.model.clone(), grads);
        let stats = StepStats {
            step: self.step,
            loss: scalar(parts.total),
            mse: scalar(parts.mse),
            energy: scalar(parts.energy),
            lr,
            grad_norm,
        };
        if !stats.loss.is_finite() {
            return Err(TrainError::Diverged {
                step: self.step,
                loss: stats.loss,
            });
        }
        self.step += 1;
        Ok(stats)
    }

    /// Predicts from the controls with the inference sampler on `n_batches` batches of `source`
    /// (drawn from its current position) and scores them.
    pub fn validate(&self, source: &mut dyn BatchSource, n_batches: usize) -> Result<ValStats, TrainError> {
        let model = self.model.valid();
        let device = self.device.clone().without_autodiff();
        let steps = self.cfg.transport.inference_steps();
        let (mut loss, mut mse, mut energy, mut n_sets) = (0.0, 0.0, 0.0, 0usize);
        let mut acc = DeltaAccumulator::default();
        for _ in 0..n_batches {
            let batch = source.next_batch()?;
            let (z0, z1, cond) = self.upload(batch, &self.paired_target(batch), &device)?;
            let pred = transport_sets(&model, z0, &cond, steps)?;
            let pred_host: Vec<f32> = pred
                .clone()
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| TrainError::Data(format!("{e:?}")))?;
            acc.add_batch(batch, &pred_host);
            let parts = self.cfg.loss.compute(pred, z1);
            let w = batch.n_sets as f64;
            loss += scalar(parts.total) * w;
            mse += scalar(parts.mse) * w;
            energy += scalar(parts.energy) * w;
            n_sets += batch.n_sets;
        }
        let n = n_sets.max(1) as f64;
        Ok(ValStats {
            step: self.step,
            loss: loss / n,
            mse: mse / n,
            energy: energy / n,
            pearson_delta: acc.mean_pearson_delta(),
            n_sets,
        })
    }

    /// Writes a checkpoint atomically: a complete `checkpoint.tmp/` replaces `checkpoint/`.
    pub fn save_checkpoint(&self, sampler: serde_json::Value) -> Result<(), TrainError> {
        let dir = self.run_dir.join(files::CHECKPOINT);
        let tmp = self.run_dir.join("checkpoint.tmp");
        let old = self.run_dir.join("checkpoint.old");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        weights::save(&self.model, &tmp.join(files::WEIGHTS))?;
        let opt = self
            .optim
            .into_bytes()
            .map_err(|e| TrainError::Resume(format!("optimizer state: {e:?}")))?;
        write_atomic(&tmp.join(files::OPTIMIZER), &opt)?;
        let state = CheckpointState {
            step: self.step,
            seed: self.cfg.train.seed,
            sampler,
        };
        write_atomic(&tmp.join(files::STATE), to_json(&state)?.as_bytes())?;
        if dir.exists() {
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
            }
            std::fs::rename(&dir, &old).map_err(|e| TrainError::io(&dir, e))?;
        }
        std::fs::rename(&tmp, &dir).map_err(|e| TrainError::io(&tmp, e))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
        }
        let mut lines = String::new();
        for m in &self.history {
            lines.push_str(&serde_json::to_string(m).unwrap_or_default());
            lines.push('\n');
        }
        write_atomic(&self.run_dir.join(files::METRICS), lines.as_bytes())?;
        Ok(())
    }

    /// Trains to `train.steps` (or `opts.stop_at`), validating every `val_every` steps on `val`
    /// (from the same start position each time) and checkpointing every `checkpoint_every` steps and
    /// at the end.
    pub fn fit(
        &mut self,
        train: &mut dyn BatchSource,
        mut val: Option<&mut dyn BatchSource>,
        opts: FitOptions,
    ) -> Result<FitReport, TrainError> {
        let end = opts.stop_at.unwrap_or(self.cfg.train.steps).min(self.cfg.train.steps);
        let val_start = val.as_ref().map(|v| v.state());
        let cells_per_step = (self.cfg.data.n_sets * self.cfg.data.set_size) as f64;
        let start_step = self.step;
        let started = Instant::now();
        let mut last = None;
        let mut last_val = None;
        let tc = self.cfg.train.clone();
        if let Some(pb) = &opts.progress {
            pb.set_length(self.cfg.train.steps);
            pb.set_position(self.step);
        }
        while self.step < end {
            let batch = train.next_batch()?;
            let stats = self.train_step(batch)?;
            self.history.push(MetricLine::Train(stats));
            last = Some(stats);
            let done = self.step - start_step;
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            if let Some(pb) = &opts.progress {
                pb.set_position(self.step);
                pb.set_message(format!(
                    "loss {:.4} | {:.1} it/s | {:.0} cells/s",
                    stats.loss,
                    done as f64 / secs,
                    done as f64 * cells_per_step / secs
                ));
            }
            let at_end = self.step == self.cfg.train.steps;
            if let (Some(v), Some(st)) = (val.as_deref_mut(), val_start.as_ref()) {
                if (tc.val_every > 0 && self.step % tc.val_every == 0) || at_end {
                    v.restore(st)?;
                    let vs = self.validate(v, tc.val_batches)?;
                    tracing::info!(
                        step = self.step,
                        val_loss = vs.loss,
                        val_energy = vs.energy,
                        pearson_delta = vs.pearson_delta,
                        "validation"
                    );
                    self.history.push(MetricLine::Val(vs));
                    last_val = Some(vs);
                }
            }
            if (tc.checkpoint_every > 0 && self.step % tc.checkpoint_every == 0) || self.step == end {
                self.save_checkpoint(train.state())?;
            }
        }
        if self.step == start_step {
            // Nothing to do (already at the end): still leave a checkpoint if there is none.
            if !self.run_dir.join(files::CHECKPOINT).exists() {
                self.save_checkpoint(train.state())?;
            }
        }
        Ok(FitReport {
            step: self.step,
            steps_run: self.step - start_step,
            seconds: started.elapsed().as_secs_f64(),
            last,
            last_val,
        })
    }

    /// Weights as safetensors bytes (for comparisons in tests and tools).
    pub fn weights_bytes(&self) -> Result<Vec<u8>, TrainError> {
        Ok(weights::to_safetensors_bytes(&self.model)?)
    }
}

/// The checkpoint directory, or the previous one if a crash interrupted the final rename.
pub fn checkpoint_dir(run_dir: &Path) -> Result<PathBuf, TrainError> {
    let dir = run_dir.join(files::CHECKPOINT);
    if dir.join(files::STATE).exists() {
        return Ok(dir);
    }
    let old = run_dir.join("checkpoint.old");
    if old.join(files::STATE).exists() {
        return Ok(old);
    }
    Err(TrainError::Resume(format!(
        "{}: no checkpoint (train first)",
        run_dir.display()
    )))
}

fn make_optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    let t = &cfg.train;
    AdamWConfig::new()
        .with_beta_1(t.beta1 as f32)
        .with_beta_2(t.beta2 as f32)
        .with_epsilon(t.adam_eps as f32)
        .with_weight_decay(t.weight_decay as f32)
        .init()
}

fn n_params(model: &TransportModel) -> usize {
    model.num_params()
}

/// Scalar value of a one-element tensor.
fn scalar(t: Tensor<1>) -> f64 {
    t.into_data().iter::<f64>().next().unwrap_or(f64::NAN)
}

/// Sum of squared gradients over all parameters, one device read.
struct GradSqNorm<'a> {
    grads: &'a GradientsParams,
    acc: Option<Tensor<1>>,
}

impl ModuleVisitor for GradSqNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let sq = (g.clone() * g).sum();
            self.acc = Some(match self.acc.take() {
                Some(a) => a + sq,
                None => sq,
            });
        }
    }
}

struct GradScale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for GradScale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// Scales all gradients so their global L2 norm is at most `max_norm` (as
/// `torch.nn.utils.clip_grad_norm_`); returns the norm before clipping. `max_norm` 0 = no clipping.
fn clip_global_norm(model: &TransportModel, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let mut v = GradSqNorm { grads, acc: None };
    model.visit(&mut v);
    let norm = v.acc.map(|a| scalar(a).sqrt()).unwrap_or(0.0);
    if max_norm > 0.0 && norm > max_norm {
        let mut s = GradScale {
            grads,
            factor: max_norm / (norm + 1e-6),
        };
        model.visit(&mut s);
    }
    norm
}

/// Writes `<path>.tmp` then renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

fn to_json<T: Serialize>(v: &T) -> Result<String, TrainError> {
    serde_json::to_string_pretty(v).map_err(|e| TrainError::Data(format!("serialising: {e}")))
}

fn to_toml<T: Serialize>(v: &T) -> Result<String, TrainError> {
    toml::to_string_pretty(v).map_err(|e| TrainError::Data(format!("serialising: {e}")))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Config {
        path: path.display().to_string(),
        msg: e.to_string(),
    })
}

/// Reads a TOML file into `T`.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    toml::from_str(&text).map_err(|e| TrainError::Config {
        path: path.display().to_string(),
        msg: e.to_string(),
    })
}

fn read_history(path: &Path) -> Result<Vec<MetricLine>, TrainError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| TrainError::Config {
                path: format!("{}:{}", path.display(), i + 1),
                msg: e.to_string(),
            })
        })
        .collect()
}

/// Summaries of a loss history: mean train loss over windows (for reports).
pub fn window_means(history: &[MetricLine], window: u64) -> BTreeMap<u64, f64> {
    let mut sums: BTreeMap<u64, (f64, u64)> = BTreeMap::new();
    for m in history {
        if let MetricLine::Train(s) = m {
            let e = sums.entry(s.step / window.max(1)).or_default();
            e.0 += s.loss;
            e.1 += 1;
        }
    }
    sums.into_iter().map(|(k, (s, n))| (k, s / n as f64)).collect()
}
