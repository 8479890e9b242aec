//! `scale synth --out FILE.h5ad`: a synthetic Perturb-seq data set with known ground truth
//! (model in `scale_prep::synth`), streamed to disk in row blocks with bounded memory.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use scale_io::{CsrMatrix, H5adStreamWriter, Matrix};
use scale_prep::synth::{SynthConfig, SynthModel};

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Output .h5ad (CSR X; written atomically).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    pub cells: usize,
    #[arg(long, default_value_t = 2_000)]
    pub genes: usize,
    /// Genetic perturbations (each knocks down a distinct gene).
    #[arg(long, default_value_t = 50)]
    pub perts: usize,
    /// Contexts (cell lines), obs `cell_type`.
    #[arg(long, default_value_t = 2)]
    pub contexts: usize,
    /// Batches, obs `gem_group`.
    #[arg(long, default_value_t = 2)]
    pub batches: usize,
    /// Add drug perturbations (perts/4, at least 1) with doses (obs `dose`, µM).
    #[arg(long)]
    pub drugs: bool,
    /// Add pairwise combinations `A+B` (perts/5, at least 1) with additive effects.
    #[arg(long)]
    pub combos: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Ground truth CSV: perturbation,context,dose,gene,log_fold_effect (non-zero effects only).
    #[arg(long, value_name = "CSV")]
    pub truth: Option<PathBuf>,
    /// Fraction of cells that are controls (`non-targeting`).
    #[arg(long, default_value_t = 0.1)]
    pub control_fraction: f64,
    /// Fraction of perturbations without any effect.
    #[arg(long, default_value_t = 0.2)]
    pub null_fraction: f64,
    /// Factor on the target gene's mean under its genetic perturbation.
    #[arg(long, default_value_t = 0.25)]
    pub knockdown: f64,
    /// Median library size (expected total counts per cell).
    #[arg(long, default_value_t = 2_500.0)]
    pub lib_size: f64,
    /// Write log1p(normalize_total(counts, target_sum)) instead of raw counts.
    #[arg(long)]
    pub log1p: bool,
    /// Target sum of the normalisation before --log1p.
    #[arg(long, default_value_t = 1e4, requires = "log1p")]
    pub target_sum: f64,
    /// Cells per generation block (unit of parallelism and seeding; changing it changes the data).
    #[arg(long, default_value_t = 2048)]
    pub block_size: usize,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let cfg = SynthConfig {
        n_cells: args.cells,
        n_genes: args.genes,
        n_perts: args.perts,
        n_contexts: args.contexts,
        n_batches: args.batches,
        drugs: args.drugs,
        combos: args.combos,
        seed: args.seed,
        control_fraction: args.control_fraction,
        null_fraction: args.null_fraction,
        knockdown: args.knockdown,
        lib_median: args.lib_size,
        block_size: args.block_size,
        ..Default::default()
    };
    let model = SynthModel::new(cfg.clone())?;
    let n_null = model.perts.iter().filter(|p| p.is_null).count() - 1;
    tracing::info!(
        "synth: {} cells × {} genes, {} perturbations ({} null), {} contexts, {} batches, seed {}",
        cfg.n_cells,
        cfg.n_genes,
        model.perts.len() - 1,
        n_null,
        cfg.n_contexts,
        cfg.n_batches,
        cfg.seed
    );
    if let Some(path) = &args.truth {
        write_atomic(path, |w| model.write_truth(w)).with_context(|| format!("writing truth {}", path.display()))?;
    }
    let mut writer = H5adStreamWriter::create(&args.out, &model.var_frame())?;
    let pb = ctx.progress(cfg.n_cells as u64, "synth");
    let (log1p, target) = (args.log1p, args.target_sum);
    let mut nnz = 0usize;
    let labels = model.generate(
        |block: CsrMatrix| -> anyhow::Result<()> {
            nnz += block.nnz();
            if log1p {
                let mut m = Matrix::Csr(block);
                scale_prep::normalize_total(&mut m, Some(target))?;
                scale_prep::log1p(&mut m)?;
                writer.write_rows(&m.into_csr())?;
            } else {
                writer.write_rows(&block)?;
            }
            Ok(())
        },
        |done| pb.set_position(done as u64),
    )?;
    pb.finish_and_clear();
    let obs = model.obs_frame(&labels);
    let space = if args.log1p {
        format!("log1p(normalize_total(target_sum={}))", args.target_sum)
    } else {
        "raw-counts".to_string()
    };
    let uns = vec![
        ("synth_config".to_string(), format!("{cfg:?}")),
        ("synth_perturbations".to_string(), model.perturbations_csv()),
        ("synth_expression".to_string(), space),
    ];
    writer.finish(&obs, &uns)?;
    println!(
        "{}: {} cells × {} genes, {} non-zeros ({:.1}%), {} perturbations",
        args.out.display(),
        cfg.n_cells,
        cfg.n_genes,
        nnz,
        100.0 * nnz as f64 / (cfg.n_cells as f64 * cfg.n_genes as f64),
        model.perts.len() - 1
    );
    Ok(())
}

/// Writes `path` through `<path>.tmp` in the same directory, renamed into place when complete.
fn write_atomic(
    path: &std::path::Path,
    f: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let tmp = path.with_file_name(format!(
        "{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let res = (|| -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f(&mut w)?;
        w.flush()?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(res?)
}
