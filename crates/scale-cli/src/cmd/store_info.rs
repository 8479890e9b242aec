//! `scale store-info`: a store's data contract, groups and sizes.

use std::path::PathBuf;

use scale_store::{Holdout, Split, Store};

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Store directory (from `scale ingest`).
    store: PathBuf,
    /// Groups to list (largest first; 0 = all).
    #[arg(long, default_value_t = 20)]
    groups: usize,
    /// Print the whole manifest as JSON instead.
    #[arg(long)]
    json: bool,
    /// Recompute every array file's checksum.
    #[arg(long)]
    verify: bool,
    /// Also report a cell-load TOML split against this store.
    #[arg(long)]
    split: Option<PathBuf>,
    /// Or a programmatic split: held-out test contexts (comma-separated).
    #[arg(long, value_delimiter = ',')]
    test_contexts: Vec<String>,
    /// Held-out test perturbations (comma-separated).
    #[arg(long, value_delimiter = ',')]
    test_perts: Vec<String>,
    /// Held-out test doses, PERTURBATION@DOSE (comma-separated).
    #[arg(long, value_delimiter = ',')]
    test_doses: Vec<String>,
    /// Fraction of perturbations held out for test (seeded).
    #[arg(long, default_value_t = 0.0)]
    test_fraction: f64,
    /// Fraction of perturbations held out for validation (seeded).
    #[arg(long, default_value_t = 0.0)]
    val_fraction: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: Args, _ctx: &Ctx) -> anyhow::Result<()> {
    let store = Store::open(&args.store)?;
    let m = store.manifest();
    if args.verify {
        store.verify()?;
    }
    if args.json {
        println!("{}", serde_json_string(m)?);
        return Ok(());
    }
    println!("store        {}", args.store.display());
    println!("format       v{} {:?}", m.format_version, m.layout);
    println!("cells        {}  (stored values {})", m.n_cells, m.nnz);
    println!(
        "features     {}  [{}{}]",
        m.genes.len(),
        m.genes.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
        if m.genes.len() > 5 { ", ..." } else { "" }
    );
    println!(
        "space        {}{}",
        m.space,
        match (m.normalization.target_sum, m.normalization.log1p) {
            (Some(t), true) => format!(" (normalize_total {t} + log1p at ingest)"),
            (Some(t), false) => format!(" (normalize_total {t} at ingest)"),
            (None, true) => " (log1p at ingest)".into(),
            (None, false) => String::new(),
        }
    );
    println!(
        "columns      pert `{}`, context {}, batch {}",
        m.pert_col,
        m.context_col
            .as_deref()
            .map(|c| format!("`{c}`"))
            .unwrap_or("(dataset)".into()),
        m.batch_col
            .as_deref()
            .map(|c| format!("`{c}`"))
            .unwrap_or("(none)".into())
    );
    println!(
        "control      `{}` ({} cells)",
        m.control_label, m.pert_counts[m.control_pert as usize]
    );
    println!("perturbations {} (excluding control)", m.perts.len() - 1);
    println!("contexts     {}: {}", m.contexts.len(), m.contexts.join(", "));
    println!("batches      {}", m.batches.len());
    if let Some(col) = &m.dose_col {
        let mut doses: Vec<f32> = m.groups.iter().map(|g| g.dose).collect();
        doses.sort_by(f32::total_cmp);
        doses.dedup();
        let shown: Vec<String> = doses.iter().map(|d| d.to_string()).collect();
        println!("doses        {} from `{col}`: {}", doses.len(), shown.join(", "));
    }
    for d in &m.datasets {
        println!(
            "dataset      {}: {} cells from {} ({}), {} genes dropped, {} genes missing",
            d.name,
            d.n_cells,
            d.inputs.join(", "),
            d.source,
            d.n_genes_dropped,
            d.n_genes_missing
        );
    }
    for n in &m.notes {
        println!("note         {n}");
    }
    let sizes: Vec<u64> = m.groups.iter().map(|g| g.n_cells).collect();
    let mut sorted = sizes.clone();
    sorted.sort_unstable();
    if !sorted.is_empty() {
        println!(
            "groups       {} (cells per group: min {}, median {}, max {})",
            m.groups.len(),
            sorted[0],
            sorted[sorted.len() / 2],
            sorted[sorted.len() - 1]
        );
    }
    let mut order: Vec<usize> = (0..m.groups.len()).collect();
    order.sort_by_key(|&g| std::cmp::Reverse(m.groups[g].n_cells));
    let n_show = if args.groups == 0 {
        order.len()
    } else {
        args.groups.min(order.len())
    };
    println!(
        "{:>6}  {:<20} {:<28} {:<16} {:>10} {:>8}",
        "group", "context", "perturbation", "batch", "offset", "cells"
    );
    for &g in &order[..n_show] {
        let gi = &m.groups[g];
        let pert = &m.perts[gi.pert as usize];
        println!(
            "{:>6}  {:<20} {:<28} {:<16} {:>10} {:>8}",
            g,
            m.contexts[gi.context as usize],
            scale_store::condition_label(pert, gi.dose),
            m.batches[gi.batch as usize],
            gi.offset,
            gi.n_cells
        );
    }
    if n_show < order.len() {
        println!("... {} more groups (--groups 0 lists all)", order.len() - n_show);
    }
    let split = if let Some(path) = &args.split {
        Some(Split::from_toml(path, &store)?)
    } else if !args.test_contexts.is_empty()
        || !args.test_perts.is_empty()
        || !args.test_doses.is_empty()
        || args.test_fraction > 0.0
        || args.val_fraction > 0.0
    {
        Some(Split::holdout(
            &store,
            &Holdout {
                test_contexts: args.test_contexts.clone(),
                test_perts: args.test_perts.clone(),
                test_doses: args.test_doses.clone(),
                test_fraction: args.test_fraction,
                val_fraction: args.val_fraction,
                seed: args.seed,
                ..Default::default()
            },
        )?)
    } else {
        None
    };
    if let Some(s) = split {
        println!("\nsplit {}:\n{}", s.source, s.report(&store));
    }
    if args.verify {
        println!("checksums    ok ({} files)", m.checksums.len());
    }
    Ok(())
}

fn serde_json_string(m: &scale_store::Manifest) -> anyhow::Result<String> {
    Ok(scale_store::manifest::to_json(m)?)
}
