//! `scale score`: baseline-normalised score of two agg_results.csv files (`cell-eval score`).

use std::path::PathBuf;

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// agg_results.csv of the model to score.
    #[arg(long, alias = "user-input")]
    pub user: PathBuf,
    /// agg_results.csv of the baseline.
    #[arg(long, alias = "base-input")]
    pub base: PathBuf,
    /// Output CSV (`metric,from_baseline`, `avg_score` last).
    #[arg(long, short = 'o')]
    pub out: PathBuf,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let s = scale_eval::score::score_files(&args.user, &args.base)?;
    scale_eval::score::write_scores(&args.out, &s)?;
    if !ctx.quiet {
        for (m, v) in &s {
            println!("{m:<30} {v:.6}");
        }
        println!("wrote {}", args.out.display());
    }
    Ok(())
}
