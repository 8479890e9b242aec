//! `scale baseline --kind context-mean|additive|linear|dose-interp`: baselines fitted on a store's training split,
//! predicting the cells of a template (the `real.h5ad` of `scale predict --split test`).

use std::path::PathBuf;

use anyhow::Context;
use scale_baselines::{predict_template, training_means, BaselineKind, Fitted, PertFeatures};
use scale_store::{Split, Store};

/// Options of the store-based baselines (flattened into `scale baseline`).
#[derive(clap::Args, Clone, Default)]
pub struct StoreBaselineArgs {
    /// Store the baseline is fitted on (its training split).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Use the split of this training run (so baseline and model see the same training data).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Or a STATE/cell-load TOML split.
    #[arg(long)]
    pub split: Option<PathBuf>,
    /// Cells to predict: an .h5ad whose control cells are the inputs and whose other cells say which
    /// (perturbation, context) and how many (e.g. `real.h5ad` from `scale predict --split test`).
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Ridge penalty of the linear baseline.
    #[arg(long, default_value_t = 1.0)]
    pub lambda: f64,
    /// Separator of combination labels (A+B).
    #[arg(long, default_value = "+")]
    pub combo_sep: String,
    /// Perturbation feature table (CSV/TSV: name, then features) for the linear baseline.
    #[arg(long)]
    pub pert_features: Option<PathBuf>,
}

pub fn run_kind(kind: BaselineKind, a: &StoreBaselineArgs, out: &PathBuf, seed: u64) -> anyhow::Result<()> {
    let store_dir = a
        .store
        .as_ref()
        .context("--store is required for --kind context-mean|additive|linear|dose-interp")?;
    let template_path = a
        .template
        .as_ref()
        .context("--template is required for --kind context-mean|additive|linear|dose-interp")?;
    let store = Store::open(store_dir)?;
    let split = match (&a.run, &a.split) {
        (Some(run), _) => scale_train::SplitSpec::load(run)?.build(&store)?,
        (None, Some(toml)) => Split::from_toml(toml, &store)?,
        (None, None) => anyhow::bail!("give --run RUN (its split) or --split SPLIT.toml"),
    };
    let means = training_means(&store, &split.train, &a.combo_sep)?;
    let features = a.pert_features.as_ref().map(|p| read_features(p)).transpose()?;
    let fitted = Fitted::fit(kind, &means, features.as_ref(), a.lambda)?;
    let template = scale_io::read_h5ad(template_path)?;
    if template.var.index != store.manifest().genes {
        anyhow::bail!(
            "{}: genes differ from the store's (first difference at position {})",
            template_path.display(),
            template
                .var
                .index
                .iter()
                .zip(&store.manifest().genes)
                .position(|(x, y)| x != y)
                .unwrap_or(0)
        );
    }
    let m = store.manifest();
    let (pred, report) = predict_template(
        &fitted,
        &template,
        &m.pert_col,
        m.context_col.as_deref(),
        m.dose_col.as_deref(),
        &m.control_label,
        seed,
    )?;
    scale_io::write_h5ad(out, &pred)?;
    tracing::info!(
        "{} baseline: {} conditions predicted ({} with a fallback for an unseen perturbation or context) -> {}",
        kind.name(),
        report.conditions,
        report.fallbacks.len(),
        out.display()
    );
    Ok(())
}

/// CSV/TSV: a header, then `name, f1, f2, ...` per perturbation.
pub fn read_features(path: &PathBuf) -> anyhow::Result<PertFeatures> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let sep = if text.lines().next().is_some_and(|l| l.contains('\t')) {
        '\t'
    } else {
        ','
    };
    let mut f = PertFeatures::default();
    for (i, line) in text.lines().enumerate().skip(1) {
        let mut it = line.split(sep);
        let name = it.next().unwrap_or_default().trim().to_string();
        let v: Vec<f32> = it
            .map(|s| s.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("{} line {}: features must be numbers", path.display(), i + 1))?;
        if f.dim == 0 {
            f.dim = v.len();
        } else if v.len() != f.dim {
            anyhow::bail!(
                "{} line {}: {} features, expected {}",
                path.display(),
                i + 1,
                v.len(),
                f.dim
            );
        }
        f.rows.insert(name, v);
    }
    Ok(f)
}
