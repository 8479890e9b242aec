//! Sampler throughput on an existing store (release build):
//!   cargo run --release -p scale-store --example store_bench -- STORE [SETS] [SET_SIZE] [THREADS] [BATCHES]
//! Prints one JSON line. Used for docs/bench/store.md.

use std::sync::Arc;

use scale_store::{bench::bench_sampler, SamplerConfig, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        return Err("usage: store_bench STORE [SETS=8] [SET_SIZE=32] [THREADS=2] [BATCHES=2000]".into());
    };
    let num = |i: usize, d: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(match args.get(i) {
            Some(s) => s.parse()?,
            None => d,
        })
    };
    let (sets, size, threads, batches) = (num(1, 8)?, num(2, 32)?, num(3, 2)?, num(4, 2000)?);
    let store = Arc::new(Store::open(std::path::Path::new(dir))?);
    let cfg = SamplerConfig {
        n_sets: sets,
        set_size: size,
        threads,
        seed: 0,
        ..Default::default()
    };
    let (r, check) = bench_sampler(store.clone(), cfg, 20, batches as u64)?;
    println!(
        "{{\"store\":\"{dir}\",\"cells\":{},\"genes\":{},\"sets\":{sets},\"set_size\":{size},\"threads\":{threads},\
         \"batches\":{},\"seconds\":{:.3},\"cells_per_s\":{:.0},\"rows_per_s\":{:.0},\"fallback_sets\":{},\"check\":{check}}}",
        store.n_cells(),
        r.n_features,
        r.batches,
        r.seconds,
        r.cells_per_s,
        r.rows_per_s,
        r.fallback_sets
    );
    Ok(())
}
