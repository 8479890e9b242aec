//! `scale baseline`: baseline predictions, reported next to every model.
//!
//! - `--train T.h5ad` (kind cell-mean): cell-eval's cell-mean baseline (`cell-eval baseline`): every
//!   perturbed cell is the mean of the per-group means of the training file (control group included, as
//!   cell-eval does), as many cells per perturbation as the file has; control cells copied.
//! - `--kind cell-mean|context-mean|additive|linear|dose-interp --store S --run RUN|--split T.toml --template R.h5ad`:
//!   fitted on a store's training split, predicting the template's cells (see `store_baseline`).

use std::path::PathBuf;

use anyhow::Context;
use scale_eval::load::read_side;
use scale_io::{AnnData, Column, Frame, H5adReader, Matrix};

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Baseline: cell-mean, context-mean, additive, linear or dose-interp (drug screens: the same
    /// perturbation and context interpolated in log dose between its nearest trained doses).
    #[arg(long, default_value = "cell-mean")]
    pub kind: String,
    /// Training cells (.h5ad) for cell-eval's cell-mean baseline; integer counts are normalised + log1p
    /// like cell-eval.
    #[arg(long, alias = "adata")]
    pub train: Option<PathBuf>,
    #[command(flatten)]
    pub store: super::store_baseline::StoreBaselineArgs,
    /// Seed of the control-cell sampling (store baselines).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output .h5ad.
    #[arg(long, short = 'o', alias = "output-path")]
    pub out: PathBuf,
    #[arg(long, default_value = "target_gene")]
    pub pert_col: String,
    #[arg(long, alias = "control-pert", default_value = "non-targeting")]
    pub control: String,
    /// Also compute the baseline's DE table (pdex-compatible CSV).
    #[arg(long, alias = "output-de-path")]
    pub out_de: Option<PathBuf>,
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let kind: scale_baselines::BaselineKind = args.kind.parse()?;
    let Some(train) = args
        .train
        .as_ref()
        .filter(|_| kind == scale_baselines::BaselineKind::CellMean)
    else {
        return super::store_baseline::run_kind(kind, &args.store, &args.out, args.seed);
    };
    let side = read_side(train, "train", &args.pert_col, None)?;
    let b = scale_eval::baseline::cell_mean_baseline(&side.x, &side.labels, &args.control)
        .with_context(|| format!("{}", train.display()))?;
    let var = H5adReader::open(train)?.read_var()?;
    let mut n_base = 0usize;
    let names: Vec<String> = b
        .source_row
        .iter()
        .map(|s| match s {
            Some(r) => side.cells[*r].clone(),
            None => {
                n_base += 1;
                format!("p.{}", n_base - 1)
            }
        })
        .collect();
    let mut obs = Frame::new(names);
    obs.set_column(&args.pert_col, Column::categorical_from_labels(&b.labels));
    let n_cells = b.labels.len();
    if args.out_de.is_some() {
        let g = scale_eval::Groups::new(&b.labels, &args.control).context("control missing in baseline")?;
        let x = Matrix::Csr(b.x.clone());
        let de = scale_eval::with_threads(args.threads, || {
            scale_eval::de::differential_expression(&x, &side.genes, &g, &scale_eval::NoProgress)
        });
        if let Some(p) = &args.out_de {
            de.write_csv(p)?;
        }
    }
    let ad = AnnData::new(Matrix::Csr(b.x), obs, var);
    scale_io::write_h5ad(&args.out, &ad)?;
    if !ctx.quiet {
        println!(
            "wrote {} ({n_cells} cells: {n_base} baseline + {} control)",
            args.out.display(),
            n_cells - n_base
        );
    }
    Ok(())
}
