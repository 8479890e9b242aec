//! `scale`: the command-line front end. Thin: argument parsing and reporting only; the work lives in
//! the `scale-*` library crates.

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "scale",
    version,
    about = "Virtual cell perturbation prediction: ingest, train, predict, evaluate"
)]
struct Cli {
    /// No progress bars; warnings and errors only.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Describe an .h5ad file (shape, encoding, expression space, columns) or a store.
    Inspect(cmd::inspect::Args),
    /// Normalise / log1p / select highly variable genes, writing a new .h5ad.
    Preprocess(cmd::preprocess::Args),
    /// Generate a synthetic Perturb-seq-like data set with known ground truth.
    Synth(cmd::synth::Args),
    /// Evaluate predictions against real data with cell-eval's metrics.
    Eval(cmd::eval::Args),
    /// Build a baseline prediction (cell-mean, context-mean, additive, linear).
    Baseline(cmd::baseline::Args),
    /// Baseline-normalised score of aggregated results (Virtual Cell Challenge score).
    Score(cmd::score::Args),
    /// Ingest .h5ad files or Tahoe parquet shards into a condition-grouped store.
    Ingest(cmd::ingest::Args),
    /// Describe a store: groups, sizes, data contract.
    StoreInfo(cmd::store_info::Args),
    /// Train the endpoint-transport set model.
    Train(cmd::train::Args),
    /// Predict perturbed cells with a trained run.
    Predict(cmd::predict::Args),
    /// Run the whole pipeline on the vendored demo data and print the comparison table.
    Demo(cmd::demo::Args),
    /// Micro-benchmarks of the hot paths (h5ad read, DE, sampler, train step).
    Bench(cmd::bench::Args),
}

/// Keeps freed large buffers in the heap instead of returning them to the kernel. Tensors and matrix
/// buffers of the same sizes are allocated every training step and every row block; with glibc's default
/// (buffers over ~128 KiB are mmap'ed and unmapped on free) each reuse paid page faults and zeroing:
/// measured on `scale train` at STATE's tiny config, 12.3 → 22.1 it/s, system time 10.1 → 1.2 s, same
/// peak RSS (BENCHMARKS.md).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called once, before any other thread exists.
    unsafe {
        // 32 MiB is the largest mmap threshold glibc accepts; larger buffers are rare and stay mmap'ed.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

fn main() {
    tune_allocator();
    let cli = Cli::parse();
    // cubecl (the wgpu/cuda backends) logs every autotune at info: kept to warnings.
    let level = if cli.quiet { "warn" } else { "info,cubecl=warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let ctx = cmd::Ctx { quiet: cli.quiet };
    let result = match cli.command {
        Command::Inspect(a) => cmd::inspect::run(a, &ctx),
        Command::Preprocess(a) => cmd::preprocess::run(a, &ctx),
        Command::Synth(a) => cmd::synth::run(a, &ctx),
        Command::Eval(a) => cmd::eval::run(a, &ctx),
        Command::Baseline(a) => cmd::baseline::run(a, &ctx),
        Command::Score(a) => cmd::score::run(a, &ctx),
        Command::Ingest(a) => cmd::ingest::run(a, &ctx),
        Command::StoreInfo(a) => cmd::store_info::run(a, &ctx),
        Command::Train(a) => cmd::train::run(a, &ctx),
        Command::Predict(a) => cmd::predict::run(a, &ctx),
        Command::Demo(a) => cmd::demo::run(a, &ctx),
        Command::Bench(a) => cmd::bench::run(a, &ctx),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
