//! `scale predict`: perturbed cells from a trained run.
//!
//! Two modes:
//! - `--controls CTRL.h5ad --perts PERTS.tsv --out PRED.h5ad`: predict the listed (perturbation,
//!   context, n_cells) from the control cells of a file;
//! - `--store S --split SPLIT --out DIR`: predict the held-out part of a store, writing `pred.h5ad`
//!   and `real.h5ad` (control cells included in both) for `scale eval` / cell-eval.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use scale_io::{detect_space, read_h5ad, write_h5ad, AnnData, Column, DenseMatrix, Frame, Matrix};
use scale_model::DeviceChoice;
use scale_train::predict::{ControlPool, CountRounding, Engine, PredictRequest, Predictor};
use scale_train::DataContract;

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Run directory written by `scale train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Control cells (.h5ad): the run's genes in the run's order, the run's expression space. If obs
    /// has the run's perturbation column, only cells with the control label are used.
    #[arg(long, requires = "perts")]
    pub controls: Option<PathBuf>,
    /// TSV with columns perturbation, context, n_cells (header row optional).
    #[arg(long)]
    pub perts: Option<PathBuf>,
    /// Store to predict the held-out split of (with `--split`).
    #[arg(long, conflicts_with = "controls")]
    pub store: Option<PathBuf>,
    /// Split of the store to predict (`test` or `val`; the run's split file is used).
    #[arg(long, requires = "store")]
    pub split: Option<String>,
    /// Output: an .h5ad file (controls mode) or a directory (store mode).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the control-set sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sets per forward pass.
    #[arg(long, default_value_t = 32)]
    pub sets_per_pass: usize,
    /// Values below one count of the source control cell (log1p and count spaces): `stochastic`
    /// (one count with probability value/one-count, else 0: mean kept, real zeros), `half` (0 below
    /// half a count) or `off`. Real cells have nothing between 0 and one count; leaving such values
    /// makes the Wilcoxon test call hundreds of false DE genes.
    #[arg(long, default_value = "stochastic")]
    pub count_rounding: CountRounding,
    /// Threads for the CPU backend (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Compute device: cpu (burn flex), wgpu (Vulkan/Metal/DX12 adapter) or cuda. wgpu and cuda need a
    /// binary built with the cargo feature of that name.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Forward pass on the CPU: `fused` (a few sets per thread through the whole network; the default)
    /// or `burn` (burn's operators, as in training). Same predictions up to float32 rounding. Other
    /// devices always use burn.
    #[arg(long, default_value = "fused")]
    pub engine: Engine,
    /// Euler steps from the controls to the prediction (endpoint-transport runs; default: the run's
    /// `transport.euler_steps`). 1 is the direct map z1_hat(z0, t = 0).
    #[arg(long)]
    pub euler_steps: Option<usize>,
}

pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    scale_train::set_threads(args.threads);
    let device = args.device.device()?;
    let mut predictor =
        Predictor::open(&args.run, &device).with_context(|| format!("opening run {}", args.run.display()))?;
    predictor.sets_per_pass = args.sets_per_pass.max(1);
    predictor.count_rounding = args.count_rounding;
    predictor.engine = args.engine;
    if let Some(k) = args.euler_steps {
        predictor.set_euler_steps(k)?;
    }
    match (&args.controls, &args.store) {
        (Some(controls), None) => {
            let perts = args.perts.as_deref().context("--perts is required with --controls")?;
            predict_from_controls(&predictor, controls, perts, &args.out, args.seed, ctx)
        }
        (None, Some(store)) => {
            let split = args.split.as_deref().unwrap_or("test");
            predict_store_split(&predictor, store, split, &args.out, args.seed, ctx)
        }
        _ => bail!("give either --controls CTRL.h5ad --perts PERTS.tsv, or --store S --split test"),
    }
}

/// Genes of a file: the var index, or a `gene_name` column when the index is something else.
fn file_genes(adata: &AnnData, contract: &DataContract) -> Vec<String> {
    if adata.var.index != contract.genes {
        if let Some(col) = adata.var.column("gene_name") {
            let names = col.to_strings();
            if names == contract.genes {
                return names;
            }
        }
    }
    adata.var.index.clone()
}

/// Reads the request table: perturbation, context, n_cells and, for runs trained with doses, dose.
pub fn read_requests(path: &Path, contract: &DataContract, uses_dose: bool) -> Result<Vec<PredictRequest>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').map(str::trim).collect();
        if i == 0 && f.get(2).is_some_and(|v| v.parse::<usize>().is_err()) {
            continue; // header
        }
        let (pert, context, n) = match f.as_slice() {
            [p, c, n, ..] => (*p, *c, *n),
            [p, n] if contract.contexts.len() == 1 => (*p, contract.contexts[0].as_str(), *n),
            _ => bail!(
                "{} line {}: expected `perturbation<TAB>context<TAB>n_cells` (context may be omitted when the run has \
                 one context)",
                path.display(),
                i + 1
            ),
        };
        let n_cells: usize = n
            .parse()
            .with_context(|| format!("{} line {}: n_cells {n:?}", path.display(), i + 1))?;
        let dose = match (f.get(3).filter(|d| !d.is_empty()), uses_dose) {
            (Some(d), true) => {
                let v: f32 = d
                    .parse()
                    .with_context(|| format!("{} line {}: dose {d:?} is not a number", path.display(), i + 1))?;
                if !(v.is_finite() && v >= 0.0) {
                    bail!("{} line {}: dose {d:?} must be a number >= 0", path.display(), i + 1);
                }
                Some(v)
            }
            (None, true) => bail!(
                "{} line {}: the run was trained with doses; give a 4th column `dose` \
                 (perturbation<TAB>context<TAB>n_cells<TAB>dose)",
                path.display(),
                i + 1
            ),
            (Some(d), false) => bail!(
                "{} line {}: dose {d:?} given, but the run has no dose embedding (model.use_dose is off)",
                path.display(),
                i + 1
            ),
            (None, false) => None,
        };
        out.push(PredictRequest {
            pert: pert.into(),
            context: context.into(),
            batch: None,
            dose,
            n_cells,
        });
    }
    if out.is_empty() {
        bail!("{}: no prediction requests", path.display());
    }
    Ok(out)
}

fn predict_from_controls(
    predictor: &Predictor,
    controls: &Path,
    perts: &Path,
    out: &Path,
    seed: u64,
    ctx: &Ctx,
) -> Result<()> {
    let contract = predictor.contract().clone();
    let adata = read_h5ad(controls).with_context(|| format!("reading {}", controls.display()))?;
    let src = controls.display().to_string();
    contract.check_genes(&file_genes(&adata, &contract), &src)?;
    // a NaN would otherwise surface as an unknown expression space: name the cell and gene instead
    scale_io::check_finite(&adata.x, controls, "X", 0)?;
    contract.check_space(detect_space(&adata.x).as_str(), &src)?;
    let requests = read_requests(perts, &contract, predictor.uses_dose())?;

    // Control rows: those labelled with the control label if the file has the perturbation column.
    let rows: Vec<usize> = match adata.obs.column(&contract.pert_col) {
        Some(col) => (0..adata.n_obs())
            .filter(|&i| col.get_str(i).as_deref() == Some(&contract.control_pert))
            .collect(),
        None => (0..adata.n_obs()).collect(),
    };
    if rows.is_empty() {
        bail!(
            "{src}: no control cells (label {:?} in obs[{:?}])",
            contract.control_pert,
            contract.pert_col
        );
    }
    let contexts: Vec<String> = match adata.obs.column(&contract.context_col) {
        Some(col) => rows.iter().map(|&i| col.get_str(i).unwrap_or_default()).collect(),
        None if contract.contexts.len() == 1 => vec![contract.contexts[0].clone(); rows.len()],
        None => bail!(
            "{src}: obs has no {:?} column and the run has {} contexts; label the controls' context",
            contract.context_col,
            contract.contexts.len()
        ),
    };
    let dense = adata.x.select_rows(&rows).to_dense();
    let g = dense.n_cols;
    let mut by_ctx: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (k, c) in contexts.iter().enumerate() {
        by_ctx.entry(c.clone()).or_default().push(k);
    }
    let pools: Vec<ControlPool> = by_ctx
        .iter()
        .map(|(c, ks)| ControlPool {
            context: c.clone(),
            batch: None,
            cells: ks
                .iter()
                .flat_map(|&k| dense.data[k * g..(k + 1) * g].iter().copied())
                .collect(),
        })
        .collect();
    let pb = ctx.progress(requests.len() as u64, "predict");
    let started = std::time::Instant::now();
    // Output: predicted cells, then the control cells, as cell-eval expects; predictions are written
    // straight into the output matrix.
    let n_req: usize = requests.iter().map(|r| r.n_cells).sum();
    let mut x = Vec::with_capacity((n_req + rows.len()) * g);
    predictor.predict_into(&requests, &pools, seed, &mut x)?;
    pb.finish_and_clear();
    let n_pred = x.len() / g;
    tracing::info!(
        cells = n_pred,
        seconds = started.elapsed().as_secs_f64(),
        cells_per_s = n_pred as f64 / started.elapsed().as_secs_f64().max(1e-9),
        "predicted"
    );

    let mut pert_lab = Vec::new();
    let mut ctx_lab = Vec::new();
    let mut doses = Vec::new();
    let mut names = Vec::new();
    for r in &requests {
        for k in 0..r.n_cells {
            names.push(match r.dose {
                Some(d) => format!("pred_{}@{d}_{}_{k}", r.pert, r.context),
                None => format!("pred_{}_{}_{k}", r.pert, r.context),
            });
            pert_lab.push(r.pert.clone());
            ctx_lab.push(r.context.clone());
            doses.push(r.dose.unwrap_or(0.0));
        }
    }
    x.extend_from_slice(&dense.data);
    for (k, &row) in rows.iter().enumerate() {
        names.push(adata.obs.index[row].clone());
        pert_lab.push(contract.control_pert.clone());
        ctx_lab.push(contexts[k].clone());
        doses.push(0.0);
    }
    let labels = Labels {
        pert: pert_lab,
        context: ctx_lab,
        dose: predictor.uses_dose().then_some(doses),
    };
    let adata = build_adata(x, g, names, &contract, labels);
    write_h5ad(out, &adata).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "wrote {} ({} predicted + {} control cells)",
        out.display(),
        n_pred,
        rows.len()
    );
    Ok(())
}

/// Per-cell obs labels of a written prediction.
pub struct Labels {
    pub pert: Vec<String>,
    pub context: Vec<String>,
    /// Doses, when the cells have them (runs and stores with doses).
    pub dose: Option<Vec<f32>>,
}

/// obs column naming each (perturbation, dose) condition, written next to the dose column: the
/// column to evaluate by (`scale eval --pert-col condition`), since one perturbation at several
/// doses is several conditions.
pub const CONDITION_COL: &str = "condition";

/// An AnnData with dense X [n, G], the run's genes as var and the perturbation/context (and dose,
/// condition) columns.
pub fn build_adata(x: Vec<f32>, g: usize, names: Vec<String>, contract: &DataContract, labels: Labels) -> AnnData {
    let n = names.len();
    let mut obs = Frame::new(names);
    if let Some(dose) = &labels.dose {
        let cond: Vec<String> = labels
            .pert
            .iter()
            .zip(dose)
            .map(|(p, &d)| scale_store::condition_label(p, d))
            .collect();
        obs.set_column(CONDITION_COL, Column::categorical_from_labels(&cond));
        let col = contract.dose_col.as_deref().unwrap_or("dose");
        obs.set_column(col, Column::Float(dose.iter().map(|&d| d as f64).collect()));
    }
    obs.set_column(&contract.pert_col, Column::categorical_from_labels(&labels.pert));
    obs.set_column(&contract.context_col, Column::categorical_from_labels(&labels.context));
    let var = Frame::new(contract.genes.clone());
    AnnData::new(
        Matrix::Dense(DenseMatrix {
            n_rows: n,
            n_cols: g,
            data: x,
        }),
        obs,
        var,
    )
}

/// Predicts every held-out (perturbation, context, batch) group of the run's split with as many
/// cells as the real group, writing `pred.h5ad` and `real.h5ad` into `out` (both with the control
/// cells of the held-out contexts, labelled with the control label).
fn predict_store_split(
    predictor: &Predictor,
    store_dir: &Path,
    part: &str,
    out: &Path,
    seed: u64,
    ctx: &Ctx,
) -> Result<()> {
    let store =
        scale_store::Store::open(store_dir).with_context(|| format!("opening store {}", store_dir.display()))?;
    let contract = predictor.contract().clone();
    let store_name = store_dir.display().to_string();
    scale_train::check_store_matches(&contract, store.manifest(), &store_name)?;
    let spec = scale_train::SplitSpec::load(predictor.run_dir())?;
    let split = spec.build(&store)?;
    let groups = match part {
        "test" => &split.test,
        "val" => &split.val,
        "train" => &split.train,
        other => bail!("--split {other:?}: expected test, val or train"),
    };
    let m = store.manifest();
    let targets: Vec<usize> = groups.iter().copied().filter(|&g| !m.is_control_group(g)).collect();
    if targets.is_empty() {
        bail!(
            "the run's split ({}) has no perturbed groups in {part}",
            spec_name(&spec)
        );
    }
    let g = m.n_features();
    // Control pools per context (all control cells of the context, as the sampler's fallback pool).
    let mut contexts: Vec<u32> = targets.iter().map(|&t| m.groups[t].context).collect();
    contexts.sort();
    contexts.dedup();
    let mut pools = Vec::new();
    let mut ctrl_rows: Vec<(u32, std::ops::Range<usize>)> = Vec::new();
    for &c in &contexts {
        let mut cells = Vec::new();
        for cg in store.control_groups(c) {
            let rows = store.group_rows(cg)?;
            cells.extend_from_slice(&store.read_rows_dense(rows.clone())?.data);
            ctrl_rows.push((c, rows));
        }
        if cells.is_empty() {
            bail!(
                "context {:?} has no control cells in {store_name}",
                m.contexts[c as usize]
            );
        }
        pools.push(ControlPool {
            context: m.contexts[c as usize].clone(),
            batch: None,
            cells,
        });
    }
    let requests: Vec<PredictRequest> = targets
        .iter()
        .map(|&t| {
            let gi = &m.groups[t];
            PredictRequest {
                pert: m.perts[gi.pert as usize].clone(),
                context: m.contexts[gi.context as usize].clone(),
                batch: Some(m.batches[gi.batch as usize].clone()),
                dose: predictor.uses_dose().then_some(gi.dose),
                n_cells: gi.n_cells as usize,
            }
        })
        .collect();
    let pb = ctx.progress(requests.len() as u64, "predict");
    let started = std::time::Instant::now();
    let mut px = Vec::new();
    predictor.predict_into(&requests, &pools, seed, &mut px)?;
    pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let n_pred = px.len() / g;
    eprintln!(
        "predicted {n_pred} cells of {} groups in {secs:.2} s ({:.0} cells/s)",
        requests.len(),
        n_pred as f64 / secs.max(1e-9)
    );

    let mut rx = Vec::new();
    let (mut names_p, mut names_r, mut pert, mut ctxs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut doses = Vec::new();
    for (&t, r) in targets.iter().zip(&requests) {
        let rows = store.group_rows(t)?;
        let real_names = store.cell_names(rows.clone())?;
        rx.extend_from_slice(&store.read_rows_dense(rows)?.data);
        for name in real_names {
            names_p.push(format!("pred_{name}"));
            names_r.push(name);
            pert.push(r.pert.clone());
            ctxs.push(r.context.clone());
            doses.push(m.groups[t].dose);
        }
    }
    for (c, rows) in &ctrl_rows {
        let d = store.read_rows_dense(rows.clone())?.data;
        px.extend_from_slice(&d);
        rx.extend_from_slice(&d);
        for name in store.cell_names(rows.clone())? {
            names_p.push(name.clone());
            names_r.push(name);
            pert.push(contract.control_pert.clone());
            ctxs.push(m.contexts[*c as usize].clone());
            doses.push(0.0);
        }
    }
    // A store with doses keeps its (perturbation, dose) conditions apart in both files, whether or
    // not the model used the doses.
    let dose = m.dose_col.is_some().then_some(doses);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let pred_path = out.join("pred.h5ad");
    let real_path = out.join("real.h5ad");
    let pred_labels = Labels {
        pert: pert.clone(),
        context: ctxs.clone(),
        dose: dose.clone(),
    };
    write_h5ad(&pred_path, &build_adata(px, g, names_p, &contract, pred_labels))
        .with_context(|| format!("writing {}", pred_path.display()))?;
    let real_labels = Labels {
        pert,
        context: ctxs,
        dose,
    };
    write_h5ad(&real_path, &build_adata(rx, g, names_r, &contract, real_labels))
        .with_context(|| format!("writing {}", real_path.display()))?;
    eprintln!("wrote {} and {}", pred_path.display(), real_path.display());
    Ok(())
}

fn spec_name(spec: &scale_train::SplitSpec) -> String {
    match spec {
        scale_train::SplitSpec::Toml { source, .. } => source.clone(),
        scale_train::SplitSpec::Holdout { .. } => "holdout".into(),
    }
}
