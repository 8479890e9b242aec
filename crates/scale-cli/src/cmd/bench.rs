//! `scale bench ...`: measured hot paths, with the figures BENCHMARKS.md quotes.

use std::path::PathBuf;
use std::time::Instant;

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand)]
pub enum What {
    /// Read a whole .h5ad (X, obs, var) repeatedly; reports cells/s and MB/s of file.
    H5adRead {
        file: PathBuf,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
}

pub fn run(args: Args, _ctx: &Ctx) -> anyhow::Result<()> {
    match args.what {
        What::H5adRead { file, repeat } => h5ad_read(&file, repeat),
    }
}

fn h5ad_read(file: &PathBuf, repeat: usize) -> anyhow::Result<()> {
    let bytes = std::fs::metadata(file)?.len() as f64;
    let mut best = f64::INFINITY;
    let mut cells = 0;
    for i in 0..repeat.max(1) {
        let t = Instant::now();
        let r = scale_io::H5adReader::open(file)?;
        let x = r.read_x()?;
        let obs = r.read_obs()?;
        let var = r.read_var()?;
        let s = t.elapsed().as_secs_f64();
        cells = x.n_rows();
        anyhow::ensure!(obs.len() == cells && var.len() == x.n_cols(), "inconsistent read");
        println!("run {i}: {s:.3} s");
        best = best.min(s);
    }
    println!(
        "h5ad-read {}: best {best:.3} s, {:.0} cells/s, {:.1} MB/s",
        file.display(),
        cells as f64 / best,
        bytes / 1e6 / best
    );
    Ok(())
}
