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
    /// Set-sampler throughput from a store into dense batches (perturbed cells/s, each with a control).
    Sampler {
        store: PathBuf,
        #[arg(long, default_value_t = 8)]
        sets: usize,
        #[arg(long, default_value_t = 32)]
        set_size: usize,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[arg(long, default_value_t = 2000)]
        batches: u64,
    },
}

pub fn run(args: Args, _ctx: &Ctx) -> anyhow::Result<()> {
    match args.what {
        What::H5adRead { file, repeat } => h5ad_read(&file, repeat),
        What::Sampler {
            store,
            sets,
            set_size,
            threads,
            batches,
        } => {
            let store = std::sync::Arc::new(scale_store::Store::open(&store)?);
            let cfg = scale_store::SamplerConfig {
                n_sets: sets,
                set_size,
                threads,
                ..Default::default()
            };
            let (b, checksum) = scale_store::bench::bench_sampler(store, cfg, 50, batches)?;
            println!(
                "sampler: {} batches of {sets}x{set_size} cells x {} features in {:.2} s: {:.0} cells/s ({:.0} rows/s) [checksum {checksum:.3}]",
                b.batches, b.n_features, b.seconds, b.cells_per_s, b.rows_per_s
            );
            Ok(())
        }
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
