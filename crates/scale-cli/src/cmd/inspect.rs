//! `scale inspect FILE.h5ad`: what a file holds and how scale will read it. Metadata only, plus a sample
//! of rows for the expression space, unless `--full`.

use std::path::PathBuf;

use anyhow::Context;
use scale_io::{detect_space, guess_columns, Column, H5adReader, MatrixEncoding};

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// An .h5ad file (or a store directory, described as `scale store-info` does).
    pub path: PathBuf,
    /// Scan every cell (exact expression space, NaN check) instead of a sample of the first rows.
    #[arg(long)]
    pub full: bool,
    /// Rows sampled for the expression-space check without --full.
    #[arg(long, default_value_t = 2000)]
    pub sample_rows: usize,
    /// Categories listed per column.
    #[arg(long, default_value_t = 8)]
    pub top: usize,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    if args.path.is_dir() {
        // A store: describe it as `scale store-info` does, with its defaults.
        #[derive(clap::Parser)]
        struct StoreInfo {
            #[command(flatten)]
            args: super::store_info::Args,
        }
        let parsed =
            <StoreInfo as clap::Parser>::parse_from([std::ffi::OsStr::new("store-info"), args.path.as_os_str()]);
        return super::store_info::run(parsed.args, ctx);
    }
    let r = H5adReader::open(&args.path)?;
    println!("file       {}", args.path.display());
    println!("cells      {}", r.n_obs());
    println!("genes      {}", r.n_vars());
    match r.x_info() {
        Ok(info) => {
            let enc = match info.encoding {
                MatrixEncoding::Csr => "CSR",
                MatrixEncoding::Csc => "CSC",
                MatrixEncoding::Dense => "dense",
            };
            let density = info.n_stored as f64 / ((info.n_rows * info.n_cols).max(1)) as f64;
            println!(
                "X          {enc}, {}, {} stored values ({:.1}% of cells × genes)",
                info.dtype,
                info.n_stored,
                100.0 * density
            );
            let rows = if args.full {
                0..r.n_obs()
            } else {
                0..r.n_obs().min(args.sample_rows)
            };
            let x = r
                .read_x_rows(rows.clone())
                .context("reading X for the expression-space check")?;
            let scope = if args.full {
                "all cells".to_string()
            } else {
                format!("first {} cells", rows.len())
            };
            scale_io::check_finite(&x, &args.path, "X", 0)?;
            let max = x.values().iter().copied().fold(0f32, f32::max);
            println!("space      {} (from {scope}; max value {max})", detect_space(&x));
        }
        Err(e) => println!("X          absent or unreadable: {e}"),
    }
    for key in r.layer_keys()? {
        let info = r.layer_info(&key)?;
        println!("layer      {key}: {:?} {}", info.encoding, info.dtype);
    }
    for key in r.obsm_keys()? {
        match r.obsm_info(&key) {
            Ok(info) => println!("obsm       {key}: {} × {} ({})", info.n_rows, info.n_cols, info.dtype),
            Err(_) => println!("obsm       {key}: (not a matrix)"),
        }
    }
    let var = r.read_var()?;
    let first: Vec<&str> = var.index.iter().take(5).map(String::as_str).collect();
    println!("var index  `{}`: {} ...", var.index_name, first.join(", "));
    let obs = r.read_obs()?;
    println!("obs        {} columns (index `{}`)", obs.columns.len(), obs.index_name);
    for (name, col) in &obs.columns {
        println!("  {name:<28} {:<12} {}", col.kind(), describe_column(col, args.top));
    }
    let g = guess_columns(&obs);
    let show = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    println!(
        "guess      perturbation: {}  control: {}  context: {}  batch: {}",
        show(&g.perturbation),
        show(&g.control),
        show(&g.context),
        show(&g.batch)
    );
    Ok(())
}

fn describe_column(col: &Column, top: usize) -> String {
    match col {
        Column::Categorical { .. } | Column::String(_) => {
            let mut counts = std::collections::BTreeMap::<String, usize>::new();
            for v in col.to_strings() {
                *counts.entry(v).or_default() += 1;
            }
            let mut v: Vec<(String, usize)> = counts.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let n = v.len();
            let shown: Vec<String> = v.iter().take(top).map(|(k, c)| format!("{k} ({c})")).collect();
            format!("{n} values: {}{}", shown.join(", "), if n > top { ", ..." } else { "" })
        }
        Column::Float(v) => {
            let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            let (lo, hi) = finite
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
            format!("range {lo:.4} .. {hi:.4}, {} missing", v.len() - finite.len())
        }
        Column::Int(v) => {
            let (lo, hi) = v.iter().fold((i64::MAX, i64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            format!("range {lo} .. {hi}")
        }
        Column::Bool(v) => format!("{} true of {}", v.iter().filter(|&&b| b).count(), v.len()),
    }
}
