//! `scale ingest`: .h5ad files or Tahoe-100M parquet shards → a condition-grouped store.

use std::path::PathBuf;

use anyhow::{bail, Context};
use scale_store::{ingest, CellSource, GeneMode, H5adSource, IngestOptions, LabelSpec, TahoeSource, ValueSource};

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Input .h5ad file (repeat for several datasets).
    #[arg(long = "input", short = 'i')]
    inputs: Vec<PathBuf>,
    /// Output store directory (built as OUT.tmp-<pid>, renamed when complete).
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// obs column with the perturbation label.
    #[arg(long, default_value = "perturbation")]
    pert_col: String,
    /// Control label in the perturbation column.
    #[arg(long, default_value = "non-targeting")]
    control: String,
    /// obs column with the context (cell type / line); without it each dataset is one context.
    #[arg(long)]
    context_col: Option<String>,
    /// obs column with the batch (gem group, plate).
    #[arg(long)]
    batch_col: Option<String>,
    /// Numeric obs column with each cell's dose (drug screens): cells of one perturbation at
    /// different doses become different groups, and models with `use_dose` condition on it.
    #[arg(long)]
    dose_col: Option<String>,
    /// Dataset name per input, in order (default: the file stem).
    #[arg(long = "dataset-name")]
    dataset_names: Vec<String>,
    /// Values to store: X, layer:NAME or obsm:KEY (embeddings, stored dense).
    #[arg(long, default_value = "X")]
    source: String,
    /// normalize_total each cell to --target-sum (input must be raw counts).
    #[arg(long)]
    normalize: bool,
    #[arg(long, default_value_t = 10_000.0)]
    target_sum: f64,
    /// log1p the (normalised) values.
    #[arg(long)]
    log1p: bool,
    /// How to combine differing gene lists: strict (error), intersection or union.
    #[arg(long, default_value = "strict")]
    genes: String,
    /// Tahoe-100M cell shards: parquet files or directories of them.
    #[arg(long)]
    tahoe: Vec<PathBuf>,
    /// Tahoe-100M metadata directory (gene_metadata.parquet, sample_metadata.parquet, ...).
    #[arg(long)]
    tahoe_meta: Option<PathBuf>,
    /// Tahoe control drug.
    #[arg(long, default_value = "DMSO_TF")]
    tahoe_control: String,
    /// Tahoe: the perturbation is the drug and the concentration of `drugname_drugconc` its dose (µM),
    /// instead of one label per drug and dose; for models with `use_dose`.
    #[arg(long, requires = "tahoe")]
    tahoe_doses: bool,
    /// Cells read per block (bounds memory).
    #[arg(long, default_value_t = 8192)]
    block_rows: usize,
    /// Replace an existing store at --out.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    if args.inputs.is_empty() && args.tahoe.is_empty() {
        bail!("give at least one --input FILE.h5ad or --tahoe SHARDS");
    }
    let n_names_needed = args.inputs.len() + usize::from(!args.tahoe.is_empty());
    if !args.dataset_names.is_empty() && args.dataset_names.len() != n_names_needed {
        bail!(
            "{} --dataset-name given for {} inputs (one per --input, plus one for --tahoe)",
            args.dataset_names.len(),
            n_names_needed
        );
    }
    let value = ValueSource::parse(&args.source)
        .with_context(|| format!("--source `{}`: expected X, layer:NAME or obsm:KEY", args.source))?;
    let genes = GeneMode::parse(&args.genes)
        .with_context(|| format!("--genes `{}`: expected strict, intersection or union", args.genes))?;
    let spec = LabelSpec {
        pert_col: args.pert_col.clone(),
        control: args.control.clone(),
        context_col: args.context_col.clone(),
        batch_col: args.batch_col.clone(),
        dose_col: args.dose_col.clone(),
    };
    let mut sources: Vec<Box<dyn CellSource>> = Vec::new();
    for (k, path) in args.inputs.iter().enumerate() {
        let name = match args.dataset_names.get(k) {
            Some(n) => n.clone(),
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| format!("dataset{k}")),
        };
        let src = H5adSource::open(path, &name, value.clone(), spec.clone(), args.block_rows)
            .with_context(|| format!("opening {}", path.display()))?;
        sources.push(Box::new(src));
    }
    if !args.tahoe.is_empty() {
        let meta = args
            .tahoe_meta
            .as_ref()
            .context("--tahoe needs --tahoe-meta DIR (with gene_metadata.parquet)")?;
        let name = args
            .dataset_names
            .get(args.inputs.len())
            .cloned()
            .unwrap_or_else(|| "tahoe".to_string());
        let mut src = TahoeSource::open(&args.tahoe, meta, &name, &args.tahoe_control, args.block_rows)?;
        if args.tahoe_doses {
            src = src.with_doses(meta)?;
        }
        if !args.inputs.is_empty() && src.labels().control != args.control {
            bail!(
                "Tahoe's control label is `{}` but --control is `{}`; ingest Tahoe into its own store",
                src.labels().control,
                args.control
            );
        }
        sources.push(Box::new(src));
    }
    let opts = IngestOptions {
        genes,
        target_sum: args.normalize.then_some(args.target_sum),
        log1p: args.log1p,
        overwrite: args.overwrite,
    };
    let pb = ctx.progress(0, "ingest");
    let t0 = std::time::Instant::now();
    let manifest = ingest(sources, &args.out, &opts, &|phase, n| {
        pb.set_message(phase.to_string());
        pb.set_position(n);
    })?;
    pb.finish_and_clear();
    let n_ctrl: u64 = manifest.pert_counts[manifest.control_pert as usize];
    println!(
        "{}: {} cells ({} controls), {} features, {} groups, {} perturbations, {} contexts, {} batches, space {} ({:.1} s)",
        args.out.display(),
        manifest.n_cells,
        n_ctrl,
        manifest.genes.len(),
        manifest.groups.len(),
        manifest.perts.len() - 1,
        manifest.contexts.len(),
        manifest.batches.len(),
        manifest.space,
        t0.elapsed().as_secs_f64()
    );
    for n in &manifest.notes {
        println!("note: {n}");
    }
    Ok(())
}
