//! The training preset (TOML): model, data, loss, transport and optimisation settings. Unknown keys
//! are rejected at every level; the resolved config is saved in every run directory.

use std::path::Path;

use scale_model::{LossConfig, ModelConfig};
use serde::{Deserialize, Serialize};

pub use crate::coupling::Coupling;
use crate::TrainError;

/// A whole preset (`configs/*.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Network hyper-parameters.
    pub model: ModelConfig,
    /// Set sampling.
    pub data: DataConfig,
    /// Loss weights.
    #[serde(default)]
    pub loss: LossConfig,
    /// Training formulation and inference steps.
    #[serde(default)]
    pub transport: TransportSettings,
    /// Optimisation, schedule, validation and checkpoints.
    pub train: TrainSettings,
}

/// Set sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Cells per set S.
    pub set_size: usize,
    /// Sets per batch B.
    pub n_sets: usize,
    /// Optional CSV/TSV feature table (name, features...) for the perturbation embedding; without it
    /// perturbations get a learned one-hot embedding.
    #[serde(default)]
    pub pert_features: Option<String>,
    /// Fraction of sets that are identity sets (a control set as its own target, labelled control).
    #[serde(default)]
    pub identity_fraction: f32,
    /// Worker threads building batches from the store (0 = on the training thread).
    #[serde(default = "one")]
    pub loader_threads: usize,
}

/// Endpoint transport (SCALE) or STATE's direct map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// t ~ U(0,1) per set, input z_t = (1-t) z0 + t z1, predict z1.
    #[default]
    Endpoint,
    /// t = 0 always: predict z1 from z0 (STATE's formulation).
    Direct,
}

/// Transport formulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportSettings {
    /// Training formulation.
    #[serde(default)]
    pub mode: Mode,
    /// Euler steps at inference (and validation); 1 = direct map. Forced to 1 in direct mode.
    #[serde(default = "one")]
    pub euler_steps: usize,
    /// Pairing of a set's control and perturbed cells for training (the path z_t in endpoint mode, the
    /// per-cell MSE targets in both modes): `independent` (as sampled) or `ot` (exact
    /// optimal-transport assignment per set).
    #[serde(default)]
    pub coupling: Coupling,
}

fn one() -> usize {
    1
}

impl Default for TransportSettings {
    fn default() -> Self {
        Self {
            mode: Mode::Endpoint,
            euler_steps: 1,
            coupling: Coupling::Independent,
        }
    }
}

impl TransportSettings {
    /// Euler steps actually used at inference.
    pub fn inference_steps(&self) -> usize {
        match self.mode {
            Mode::Direct => 1,
            Mode::Endpoint => self.euler_steps.max(1),
        }
    }
}

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// Total optimiser steps.
    pub steps: u64,
    /// Peak learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    #[serde(default = "default_wd")]
    pub weight_decay: f64,
    /// AdamW betas.
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// AdamW epsilon.
    #[serde(default = "default_adam_eps")]
    pub adam_eps: f64,
    /// Linear warm-up steps from 0 to `lr`.
    #[serde(default)]
    pub warmup_steps: u64,
    /// Cosine decay floor, as a fraction of `lr`.
    #[serde(default)]
    pub min_lr_ratio: f64,
    /// Clip the global gradient norm to this value (0 = off).
    #[serde(default = "default_clip")]
    pub grad_clip: f64,
    /// Seed of weights, set pairing and path times.
    #[serde(default)]
    pub seed: u64,
    /// Validate every N steps (0 = never; the end of training always validates if there is a
    /// validation split).
    #[serde(default)]
    pub val_every: u64,
    /// Batches drawn for one validation pass.
    #[serde(default = "default_val_batches")]
    pub val_batches: usize,
    /// Write a checkpoint every N steps (0 = only at the end).
    #[serde(default)]
    pub checkpoint_every: u64,
}

fn default_wd() -> f64 {
    0.01
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_adam_eps() -> f64 {
    1e-8
}
fn default_clip() -> f64 {
    10.0
}
fn default_val_batches() -> usize {
    4
}

impl TrainConfig {
    /// Parses a preset; `source` names it in errors.
    pub fn from_toml_str(text: &str, source: &str) -> Result<Self, TrainError> {
        let cfg: Self = toml::from_str(text).map_err(|e| TrainError::Config {
            path: source.to_string(),
            msg: e.to_string(),
        })?;
        cfg.validate().map_err(|msg| TrainError::Config {
            path: source.to_string(),
            msg,
        })?;
        Ok(cfg)
    }

    /// Reads a preset file.
    pub fn from_file(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::Config {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// TOML text of the resolved config.
    pub fn to_toml(&self) -> String {
        // Serialising plain structs of numbers, strings and options cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    fn validate(&self) -> Result<(), String> {
        self.model.validate().map_err(|e| e.to_string())?;
        let t = &self.train;
        let checks: [(bool, &str); 9] = [
            (self.data.set_size == 0, "data.set_size must be at least 1"),
            (self.data.n_sets == 0, "data.n_sets must be at least 1"),
            (t.steps == 0, "train.steps must be at least 1"),
            (!(t.lr > 0.0 && t.lr.is_finite()), "train.lr must be a positive number"),
            (
                !(0.0..=1.0).contains(&t.min_lr_ratio),
                "train.min_lr_ratio must be in [0, 1]",
            ),
            (t.grad_clip < 0.0, "train.grad_clip must be >= 0"),
            (
                !(0.0..1.0).contains(&t.beta1) || !(0.0..1.0).contains(&t.beta2),
                "train.beta1/beta2 must be in [0, 1)",
            ),
            (
                self.loss.w_mse < 0.0 || self.loss.w_energy < 0.0,
                "loss weights must be >= 0",
            ),
            (
                self.loss.w_mse == 0.0 && self.loss.w_energy == 0.0,
                "loss.w_mse and loss.w_energy cannot both be 0",
            ),
        ];
        for (bad, msg) in checks {
            if bad {
                return Err(msg.to_string());
            }
        }
        if self.transport.euler_steps == 0 {
            return Err("transport.euler_steps must be at least 1".into());
        }
        Ok(())
    }

    /// Learning rate at `step` (0-based): linear warm-up to `lr`, then cosine decay to
    /// `lr * min_lr_ratio` at the last step.
    pub fn lr_at(&self, step: u64) -> f64 {
        let t = &self.train;
        if step < t.warmup_steps {
            return t.lr * (step + 1) as f64 / t.warmup_steps as f64;
        }
        let decay_steps = t.steps.saturating_sub(t.warmup_steps).max(1);
        let progress = ((step - t.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        let floor = t.lr * t.min_lr_ratio;
        floor + (t.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
[model]
hidden = 16
n_layers = 1
n_heads = 2
[data]
set_size = 4
n_sets = 2
[train]
steps = 100
lr = 1e-3
warmup_steps = 10
"#;

    #[test]
    fn parses_defaults_and_round_trips() {
        let c = TrainConfig::from_toml_str(MIN, "min.toml").unwrap();
        assert_eq!(c.transport.mode, Mode::Endpoint);
        assert_eq!(c.loss.w_energy, 1.0);
        let back = TrainConfig::from_toml_str(&c.to_toml(), "resolved").unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        let e = TrainConfig::from_toml_str(&MIN.replace("n_heads = 2", "n_heads = 2\nn_head = 3"), "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml") && e.contains("n_head"), "{e}");
        let e = TrainConfig::from_toml_str(&MIN.replace("n_heads = 2", "n_heads = 3"), "x.toml").unwrap_err();
        assert!(e.to_string().contains("n_heads"), "{e}");
        assert!(TrainConfig::from_toml_str(&MIN.replace("set_size = 4", "set_size = 0"), "x").is_err());
    }

    #[test]
    fn coupling_defaults_to_independent_and_parses_ot() {
        let c = TrainConfig::from_toml_str(MIN, "min.toml").unwrap();
        assert_eq!(c.transport.coupling, Coupling::Independent);
        let ot = TrainConfig::from_toml_str(&format!("{MIN}[transport]\ncoupling = \"ot\"\n"), "ot.toml").unwrap();
        assert_eq!(ot.transport.coupling, Coupling::Ot);
        let back = TrainConfig::from_toml_str(&ot.to_toml(), "resolved").unwrap();
        assert_eq!(back.transport.coupling, Coupling::Ot);
        let e = TrainConfig::from_toml_str(&format!("{MIN}[transport]\ncoupling = \"sinkhorn\"\n"), "bad.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.toml") && e.contains("sinkhorn"), "{e}");
    }

    #[test]
    fn every_key_is_documented() {
        // a preset with every optional key set, so the resolved TOML lists them all
        let full = MIN.replace("n_heads = 2", "n_heads = 2\nhead_dim = 8\nmlp_hidden = 32")
            + "[transport]\ncoupling = \"ot\"\n";
        let mut c = TrainConfig::from_toml_str(&full, "full.toml").unwrap();
        c.data.pert_features = Some("features.csv".into());
        let resolved: toml::Table = toml::from_str(&c.to_toml()).unwrap();
        let doc =
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md"))
                .unwrap();
        for (section, keys) in &resolved {
            assert!(
                doc.contains(&format!("## `[{section}]`")),
                "docs/config.md lacks section [{section}]"
            );
            for key in keys.as_table().unwrap().keys() {
                assert!(
                    doc.contains(&format!("`{key}`")),
                    "docs/config.md lacks [{section}] {key}"
                );
            }
        }
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        let c = TrainConfig::from_toml_str(MIN, "min.toml").unwrap();
        assert!((c.lr_at(0) - 1e-4).abs() < 1e-12);
        assert!((c.lr_at(9) - 1e-3).abs() < 1e-12);
        assert!((c.lr_at(10) - 1e-3).abs() < 1e-12);
        assert!(c.lr_at(50) < c.lr_at(20));
        assert!(c.lr_at(99) < 1e-5);
    }

    #[test]
    fn shipped_presets_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        // every preset in the directory, so a new one cannot ship unparsed
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let c = TrainConfig::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(c.train.steps > 0, "{}", path.display());
                names.push(path.file_stem().unwrap().to_string_lossy().into_owned());
            }
        }
        for name in ["tiny", "small", "state", "state-tiny-bench", "demo", "demo-direct"] {
            assert!(names.iter().any(|n| n == name), "configs/{name}.toml missing");
        }
        let direct = TrainConfig::from_file(&dir.join("demo-direct.toml")).unwrap();
        assert_eq!((direct.transport.mode, direct.loss.w_mse), (Mode::Direct, 0.0));
        let bench = TrainConfig::from_file(&dir.join("state-tiny-bench.toml")).unwrap();
        assert_eq!(
            (bench.model.hidden, bench.model.n_layers, bench.model.n_heads),
            (128, 2, 4)
        );
        assert_eq!((bench.data.set_size, bench.data.n_sets), (32, 8));
    }
}
