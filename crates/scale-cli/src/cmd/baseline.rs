//! `scale baseline`: cell-eval's cell-mean baseline prediction (`cell-eval baseline`): every
//! perturbed cell is the mean of the per-group means of the training file (control group included,
//! as cell-eval does), as many cells per perturbation as the file has; control cells copied.

use std::path::PathBuf;

use anyhow::Context;
use scale_eval::load::read_side;
use scale_io::{AnnData, Column, Frame, H5adReader, Matrix};

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Training cells (.h5ad); integer counts are normalised + log1p like cell-eval.
    #[arg(long, alias = "adata")]
    pub train: PathBuf,
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
    let side = read_side(&args.train, "train", &args.pert_col, None)?;
    let b = scale_eval::baseline::cell_mean_baseline(&side.x, &side.labels, &args.control)
        .with_context(|| format!("{}", args.train.display()))?;
    let var = H5adReader::open(&args.train)?.read_var()?;
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
