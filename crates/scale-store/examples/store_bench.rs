//! Benchmarks for docs/bench/store.md (release build):
//!   store_bench sampler STORE [SETS=8] [SET_SIZE=32] [THREADS=2] [BATCHES=2000]
//!   store_bench ingest OUT PERT_COL CONTEXT_COL BATCH_COL CONTROL INPUT.h5ad...
//! `ingest` runs the library call behind `scale ingest` (same sources and options) so that peak RSS can
//! be measured with /usr/bin/time without building the whole CLI in release. Prints one JSON line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use scale_store::{
    bench::bench_sampler, ingest, CellSource, H5adSource, IngestOptions, LabelSpec, SamplerConfig, Store, ValueSource,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn sampler(args: &[String]) -> Res<()> {
    let dir = args.first().ok_or("sampler needs STORE")?;
    let num = |i: usize, d: usize| -> Res<usize> {
        Ok(match args.get(i) {
            Some(s) => s.parse()?,
            None => d,
        })
    };
    let (sets, size, threads, batches) = (num(1, 8)?, num(2, 32)?, num(3, 2)?, num(4, 2000)?);
    let store = Arc::new(Store::open(Path::new(dir))?);
    let cfg = SamplerConfig {
        n_sets: sets,
        set_size: size,
        threads,
        seed: 0,
        ..Default::default()
    };
    let (r, check) = bench_sampler(store.clone(), cfg, 20, batches as u64)?;
    println!(
        "{{\"mode\":\"sampler\",\"store\":\"{dir}\",\"cells\":{},\"genes\":{},\"sets\":{sets},\"set_size\":{size},\
         \"threads\":{threads},\"batches\":{},\"seconds\":{:.3},\"cells_per_s\":{:.0},\"rows_per_s\":{:.0},\
         \"fallback_sets\":{},\"check\":{check}}}",
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

fn ingest_mode(args: &[String]) -> Res<()> {
    if args.len() < 6 {
        return Err("ingest needs OUT PERT_COL CONTEXT_COL BATCH_COL CONTROL INPUT...".into());
    }
    let out = PathBuf::from(&args[0]);
    let spec = LabelSpec {
        pert_col: args[1].clone(),
        context_col: Some(args[2].clone()),
        batch_col: Some(args[3].clone()),
        control: args[4].clone(),
        dose_col: None,
    };
    let mut sources: Vec<Box<dyn CellSource>> = Vec::new();
    for (k, input) in args[5..].iter().enumerate() {
        sources.push(Box::new(H5adSource::open(
            Path::new(input),
            &format!("d{k}"),
            ValueSource::X,
            spec.clone(),
            8192,
        )?));
    }
    let t0 = Instant::now();
    let opts = IngestOptions {
        overwrite: true,
        ..Default::default()
    };
    let m = ingest(sources, &out, &opts, &|_, _| {})?;
    println!(
        "{{\"mode\":\"ingest\",\"out\":\"{}\",\"cells\":{},\"nnz\":{},\"groups\":{},\"seconds\":{:.2}}}",
        out.display(),
        m.n_cells,
        m.nnz,
        m.groups.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(|s| s.as_str()) {
        Some("sampler") => sampler(&args[1..]),
        Some("ingest") => ingest_mode(&args[1..]),
        _ => Err("usage: store_bench sampler STORE [SETS SET_SIZE THREADS BATCHES] | ingest OUT PERT CTX BATCH CONTROL INPUT...".into()),
    }
}
