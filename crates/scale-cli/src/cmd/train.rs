//! `scale train`: train the endpoint-transport model on a store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use scale_model::DeviceChoice;
use scale_model::{FeatureTable, PertEncoder};
use scale_store::{SamplerConfig, Store};
use scale_train::{check_store_matches, DataContract, FitOptions, SplitSpec, StoreSource, TrainConfig, Trainer};

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Store directory (`scale ingest`).
    #[arg(long)]
    pub store: PathBuf,
    /// STATE/cell-load split TOML.
    #[arg(long, conflicts_with_all = ["holdout_context", "holdout_perts", "holdout_doses"])]
    pub split: Option<PathBuf>,
    /// Hold out these contexts (comma-separated) for testing.
    #[arg(long, value_delimiter = ',')]
    pub holdout_context: Vec<String>,
    /// Hold out these perturbations (comma-separated) for testing.
    #[arg(long, value_delimiter = ',')]
    pub holdout_perts: Vec<String>,
    /// Hold out single doses, PERTURBATION@DOSE (comma-separated), for testing: the perturbation's
    /// other doses stay in training.
    #[arg(long, value_delimiter = ',')]
    pub holdout_doses: Vec<String>,
    /// With a hold-out: fraction of the remaining perturbations used for validation.
    #[arg(long, default_value_t = 0.0)]
    pub val_fraction: f64,
    /// Preset (configs/*.toml). Not needed with --resume (the run's resolved config is used).
    #[arg(long, required_unless_present = "resume")]
    pub config: Option<PathBuf>,
    /// Run directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Total steps (overrides train.steps).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Stop after this many completed steps (the schedule still spans train.steps); --resume continues.
    #[arg(long)]
    pub stop_at: Option<u64>,
    /// Perturbation feature table (CSV/TSV: name, features...) instead of a one-hot embedding.
    #[arg(long)]
    pub pert_features: Option<PathBuf>,
    /// Threads for the CPU backend (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Compute device: cpu (burn flex), wgpu (Vulkan/Metal/DX12 adapter) or cuda. wgpu and cuda need a
    /// binary built with the cargo feature of that name.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    scale_train::set_threads(args.threads);
    let device = args.device.device()?;
    let store = Arc::new(Store::open(&args.store).with_context(|| format!("opening store {}", args.store.display()))?);
    let store_name = args.store.display().to_string();

    let (mut trainer, spec, sampler_state) = if args.resume {
        if args.config.is_some()
            || args.split.is_some()
            || !args.holdout_context.is_empty()
            || !args.holdout_perts.is_empty()
            || !args.holdout_doses.is_empty()
        {
            tracing::warn!("--resume uses the run's saved config and split; --config/--split/--holdout-* are ignored");
        }
        let (trainer, state) = Trainer::resume(&args.out, &device, args.steps)?;
        check_store_matches(trainer.contract(), store.manifest(), &store_name)?;
        let spec = SplitSpec::load(&args.out)?;
        (trainer, spec, Some(state.sampler))
    } else {
        let config = args.config.as_deref().context("--config is required")?;
        let mut cfg = TrainConfig::from_file(config)?;
        if let Some(n) = args.steps {
            cfg.train.steps = n;
        }
        if let Some(p) = &args.pert_features {
            cfg.data.pert_features = Some(p.display().to_string());
        }
        let spec = split_spec(&args)?;
        let split = spec.build(&store)?;
        let m = store.manifest();
        let contract = DataContract::from_manifest(m)?;
        let encoder = match &cfg.data.pert_features {
            Some(path) => PertEncoder::Features(FeatureTable::read(Path::new(path))?),
            None => {
                // One-hot over the perturbations that occur in training: held-out ones stay unknown
                // (a named error at prediction) instead of getting an untrained embedding row.
                let mut train_perts: Vec<String> = split
                    .train
                    .iter()
                    .map(|&g| m.perts[m.groups[g].pert as usize].clone())
                    .collect();
                train_perts.sort();
                train_perts.dedup();
                PertEncoder::one_hot(&train_perts, &m.control_label)
            }
        };
        if encoder.dim() == 0 {
            bail!("the training split has no perturbed groups");
        }
        let trainer = Trainer::create(&args.out, cfg, contract, &encoder, &device)?;
        spec.save(&args.out)?;
        (trainer, spec, None)
    };

    let cfg = trainer.config().clone();
    let split = spec.build(&store)?;
    eprint!("{}", split.report(&store));
    let sampler_cfg = |seed: u64, threads: usize| SamplerConfig {
        n_sets: cfg.data.n_sets,
        set_size: cfg.data.set_size,
        seed,
        threads,
        identity_fraction: cfg.data.identity_fraction,
        prefetch: 2,
        start_batch: 0,
    };
    let mut train = StoreSource::new(
        store.clone(),
        split.train.clone(),
        sampler_cfg(cfg.train.seed, cfg.data.loader_threads),
    )?;
    if let Some(st) = &sampler_state {
        use scale_train::BatchSource;
        train.restore(st)?;
    }
    // Validation: the split's val part; a fixed stream (same sets every pass).
    let val_groups: Vec<usize> = split
        .val
        .iter()
        .copied()
        .filter(|&g| !store.manifest().is_control_group(g))
        .collect();
    let mut val = if val_groups.is_empty() {
        tracing::info!("no validation groups in the split: validation skipped");
        None
    } else {
        let mut c = sampler_cfg(cfg.train.seed ^ 0x5641_4c, 0);
        c.identity_fraction = 0.0;
        Some(StoreSource::new(store.clone(), split.val.clone(), c)?)
    };

    let pb = ctx.progress(cfg.train.steps, "train");
    let report = trainer.fit(
        &mut train,
        val.as_mut().map(|v| v as &mut dyn scale_train::BatchSource),
        FitOptions {
            stop_at: args.stop_at,
            progress: Some(pb.clone()),
        },
    )?;
    pb.finish_and_clear();
    let cells = (cfg.data.n_sets * cfg.data.set_size) as f64 * report.steps_run as f64;
    eprintln!(
        "trained {} steps (now at {}/{}) in {:.1} s: {:.2} it/s, {:.0} cells/s",
        report.steps_run,
        report.step,
        cfg.train.steps,
        report.seconds,
        report.steps_run as f64 / report.seconds.max(1e-9),
        cells / report.seconds.max(1e-9)
    );
    if let Some(s) = report.last {
        eprintln!(
            "last step: loss {:.5} (mse {:.5}, energy {:.5}), lr {:.2e}",
            s.loss, s.mse, s.energy, s.lr
        );
    }
    if let Some(v) = report.last_val {
        eprintln!(
            "validation: loss {:.5}, energy {:.5}, pearson_delta {:.4} over {} sets",
            v.loss, v.energy, v.pearson_delta, v.n_sets
        );
    }
    eprintln!("run directory: {}", args.out.display());
    Ok(())
}

fn split_spec(args: &Args) -> Result<SplitSpec> {
    if let Some(p) = &args.split {
        let text = std::fs::read_to_string(p).with_context(|| format!("reading split {}", p.display()))?;
        return Ok(SplitSpec::Toml {
            source: p.display().to_string(),
            text,
        });
    }
    if args.holdout_context.is_empty() && args.holdout_perts.is_empty() && args.holdout_doses.is_empty() {
        bail!("give a split: --split SPLIT.toml, --holdout-context C, --holdout-perts P1,P2 or --holdout-doses P@D");
    }
    Ok(SplitSpec::Holdout {
        test_contexts: args.holdout_context.clone(),
        test_perts: args.holdout_perts.clone(),
        val_contexts: vec![],
        val_perts: vec![],
        test_doses: args.holdout_doses.clone(),
        val_fraction: args.val_fraction,
        seed: 0,
    })
}
