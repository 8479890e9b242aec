//! `scale eval`: cell-eval 0.8.2 compatible evaluation of a prediction against real data.
//! Writes real_de.csv, pred_de.csv, results.csv (plus an `n_cells` column) and agg_results.csv,
//! `{celltype}_`-prefixed per cell type with --celltype-col.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context};
use scale_eval::load::{read_side_reusing, Side};
use scale_eval::{check_genes, evaluate_summaries, summarize_then, DeTable, EvalConfig, FileSummary, Profile};
use scale_io::H5adReader;

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Predicted cells (.h5ad, log1p-normalised; integer counts are normalised + log1p like cell-eval).
    #[arg(long, short = 'p', alias = "adata-pred")]
    pub pred: PathBuf,
    /// Real cells (.h5ad).
    #[arg(long, short = 'r', alias = "adata-real")]
    pub real: PathBuf,
    /// obs column with the perturbation label.
    #[arg(long, default_value = "target_gene")]
    pub pert_col: String,
    /// Label of the control cells.
    #[arg(long, alias = "control-pert", default_value = "non-targeting")]
    pub control: String,
    /// obs column to split the evaluation by (outputs get a `{celltype}_` prefix).
    #[arg(long)]
    pub celltype_col: Option<String>,
    /// Metric profile: full, minimal, vcc, de, anndata, pds.
    #[arg(long, default_value = "full")]
    pub profile: String,
    /// Comma-separated metric names to skip.
    #[arg(long, value_delimiter = ',')]
    pub skip_metrics: Vec<String>,
    /// Precomputed predicted DE table (pdex/cell-eval CSV) instead of computing it.
    #[arg(long)]
    pub de_pred: Option<PathBuf>,
    /// Precomputed real DE table.
    #[arg(long)]
    pub de_real: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, alias = "num-threads")]
    pub threads: Option<usize>,
    /// Evaluate on the genes both files share (in the real file's order) instead of failing when the
    /// gene lists differ.
    #[arg(long)]
    pub align_genes: bool,
    /// Output directory.
    #[arg(long, short = 'o', alias = "outdir")]
    pub out: PathBuf,
}

/// Maps the library's progress hook onto the CLI's bars.
struct Bars<'a> {
    ctx: &'a Ctx,
    bar: Mutex<Option<indicatif::ProgressBar>>,
}

impl scale_eval::Progress for Bars<'_> {
    fn start(&self, stage: &str, len: u64) {
        if let Ok(mut b) = self.bar.lock() {
            *b = Some(self.ctx.progress(len, stage));
        }
    }
    fn inc(&self, n: u64) {
        if let Ok(b) = self.bar.lock() {
            if let Some(b) = b.as_ref() {
                b.inc(n);
            }
        }
    }
    fn finish(&self) {
        if let Ok(mut b) = self.bar.lock() {
            if let Some(b) = b.take() {
                b.finish_and_clear();
            }
        }
    }
}

fn out_name(prefix: Option<&str>, name: &str) -> String {
    match prefix {
        // cell-eval replaces slashes (e.g. "HepG2/C3A")
        Some(p) => format!("{}_{name}", p.replace('/', "-")),
        None => name.to_string(),
    }
}

/// Reads obs labels only (cheap), to fail early on mismatching label sets.
fn labels_of(path: &Path, col: &str) -> anyhow::Result<Vec<String>> {
    let r = H5adReader::open(path)?;
    let obs = r.read_obs()?;
    let c = obs.column(col).with_context(|| {
        format!(
            "{}: obs has no column `{col}`; columns are: {}",
            path.display(),
            obs.column_names().join(", ")
        )
    })?;
    Ok(c.to_strings())
}

fn unique(v: &[String]) -> Vec<String> {
    let mut u = v.to_vec();
    u.sort();
    u.dedup();
    u
}

fn check_labels(real: &[String], pred: &[String], control: &str, args: &Args) -> anyhow::Result<()> {
    let (ur, up) = (unique(real), unique(pred));
    if ur != up {
        let only = |a: &[String], b: &[String]| a.iter().filter(|x| !b.contains(x)).cloned().collect::<Vec<_>>();
        bail!(
            "perturbation labels (obs `{}`) differ between real and pred:\n  only in real ({}): {:?}\n  only in pred ({}): {:?}",
            args.pert_col,
            args.real.display(),
            only(&ur, &up),
            args.pred.display(),
            only(&up, &ur)
        );
    }
    if !ur.iter().any(|l| l == control) {
        bail!(
            "control label `{control}` not found in obs `{}` of {} (labels: {:?}); set --control",
            args.pert_col,
            args.real.display(),
            ur.iter().take(20).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// Cell-type groups in order of first appearance (pandas `unique`).
fn celltype_groups(side: &Side) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    if let Some(ct) = &side.celltypes {
        for (r, c) in ct.iter().enumerate() {
            match out.iter_mut().find(|(n, _)| n == c) {
                Some((_, rows)) => rows.push(r),
                None => out.push((c.clone(), vec![r])),
            }
        }
    }
    out
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let profile: Profile = args.profile.parse()?;
    let cfg = EvalConfig {
        control: args.control.clone(),
        profile,
        skip_metrics: args.skip_metrics.clone(),
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let t0 = std::time::Instant::now();

    // Cheap checks first: genes and labels, before any matrix is read.
    let genes_real = H5adReader::open(&args.real)?.read_var()?.index;
    let genes_pred = H5adReader::open(&args.pred)?.read_var()?.index;
    let shared: Option<(Vec<usize>, Vec<usize>)> = if genes_real != genes_pred {
        if !args.align_genes {
            check_genes(&genes_real, &genes_pred)?;
        }
        let pos: std::collections::HashMap<&str, usize> =
            genes_pred.iter().enumerate().map(|(i, g)| (g.as_str(), i)).collect();
        let (r, p): (Vec<usize>, Vec<usize>) = genes_real
            .iter()
            .enumerate()
            .filter_map(|(i, g)| pos.get(g.as_str()).map(|&j| (i, j)))
            .unzip();
        if r.is_empty() {
            bail!(scale_eval::EvalError::NoSharedGenes);
        }
        tracing::warn!(
            "--align-genes: evaluating on the {} genes shared by real ({}) and pred ({})",
            r.len(),
            genes_real.len(),
            genes_pred.len()
        );
        Some((r, p))
    } else {
        None
    };
    let lr = labels_of(&args.real, &args.pert_col)?;
    let lp = labels_of(&args.pred, &args.pert_col)?;
    if args.celltype_col.is_none() {
        check_labels(&lr, &lp, &args.control, &args)?;
    }
    let genes: Vec<String> = match &shared {
        Some((r, _)) => r.iter().map(|&i| genes_real[i].clone()).collect(),
        None => genes_real.clone(),
    };
    let de_real = args
        .de_real
        .as_ref()
        .map(|p| DeTable::read_csv(p, &genes))
        .transpose()?;
    let de_pred = args
        .de_pred
        .as_ref()
        .map(|p| DeTable::read_csv(p, &genes))
        .transpose()?;

    let bars = Bars {
        ctx,
        bar: Mutex::new(None),
    };
    // One DE table to disk, with one formatting thread so that it fills the cores' idle time instead
    // of competing with the pool.
    let write_table = |de: &DeTable, name: &str, ct: Option<&str>| -> scale_eval::Result<()> {
        let t = std::time::Instant::now();
        let written = scale_eval::with_threads(Some(1), || de.write_csv(&args.out.join(out_name(ct, name))));
        tracing::info!(
            "wrote {name} in {:.2}s (at {:.2}s)",
            t.elapsed().as_secs_f64(),
            t0.elapsed().as_secs_f64()
        );
        written
    };
    // One file at a time: summaries are small, so the real matrix is done with before pred is read,
    // and pred is read into its buffers (`spare`; the matrix comes back for that).
    // `csv`: write the DE table under this name while the energy distances run
    type Summaries = Vec<(Option<String>, FileSummary)>;
    let summarize_file = |path: &Path,
                          which: &str,
                          cols: Option<&Vec<usize>>,
                          have_de: bool,
                          csv: Option<&str>,
                          spare: Option<scale_io::Matrix>|
     -> anyhow::Result<(Summaries, scale_io::Matrix)> {
        let t = std::time::Instant::now();
        let mut side = read_side_reusing(path, which, &args.pert_col, args.celltype_col.as_deref(), spare)?;
        if let Some(c) = cols {
            side.select_genes(c);
        }
        tracing::info!(
            "read {which} {} ({} cells) in {:.1}s",
            path.display(),
            side.labels.len(),
            t.elapsed().as_secs_f64()
        );
        let mut out = Vec::new();
        let summarize_part = |data: &scale_eval::EvalData, ct: Option<&str>| {
            let sink = csv.map(|name| move |de: &DeTable| write_table(de, name, ct));
            let sink = sink.as_ref().map(|s| s as scale_eval::DeSink);
            scale_eval::with_threads(args.threads, || summarize_then(data, &cfg, have_de, &bars, sink))
        };
        if args.celltype_col.is_some() {
            for (ct, rows) in celltype_groups(&side) {
                let sub = side.select(&rows);
                let s = summarize_part(&sub.view(), Some(&ct)).with_context(|| format!("cell type `{ct}`"))?;
                out.push((Some(ct), s));
            }
        } else {
            out.push((None, summarize_part(&side.view(), None)?));
        }
        tracing::info!("{which}: summarised in {:.1}s", t.elapsed().as_secs_f64());
        Ok((out, side.x))
    };
    let evaluate_all =
        |real: &[(Option<String>, FileSummary)], pred: &[(Option<String>, FileSummary)]| -> anyhow::Result<()> {
            if real.len() != pred.len() {
                bail!(
                    "number of cell types differs: real has {}, pred has {}",
                    real.len(),
                    pred.len()
                );
            }
            for (ct, rs) in real {
                let ps = &pred
                    .iter()
                    .find(|(c, _)| c == ct)
                    .with_context(|| format!("cell type `{}` is in real but not in pred", ct.as_deref().unwrap_or("")))?
                    .1;
                let out = evaluate_summaries(rs, ps, &genes, &cfg, de_real.as_ref(), de_pred.as_ref())
                    .with_context(|| format!("cell type `{}`", ct.as_deref().unwrap_or("(all)")))?;
                let rp = args.out.join(out_name(ct.as_deref(), "results.csv"));
                let ap = args.out.join(out_name(ct.as_deref(), "agg_results.csv"));
                out.results.write_csv(&rp)?;
                out.agg.write_csv(&ap)?;
                if !ctx.quiet {
                    println!(
                        "{}: {} perturbations; mean over perturbations:",
                        ct.as_deref().unwrap_or("all cells"),
                        out.results.perts.len()
                    );
                    for (name, _) in &out.results.columns {
                        println!(
                            "  {name:<30} {}",
                            scale_eval::results::format_value(out.agg.get(name, "mean"))
                        );
                    }
                    println!("wrote {} and {}", rp.display(), ap.display());
                }
            }
            Ok(())
        };
    let write_de = |side: &[(Option<String>, FileSummary)], name: &str| -> anyhow::Result<()> {
        for (ct, s) in side {
            if let Some(de) = &s.de {
                write_table(de, name, ct.as_deref())?;
            }
        }
        Ok(())
    };
    let (mut real, spare) = summarize_file(
        &args.real,
        "real",
        shared.as_ref().map(|s| &s.0),
        de_real.is_some(),
        None,
        None,
    )?;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        // real's table is written while pred is read (the read leaves a core idle much of the time);
        // pred's while pred's energy distances run, so that only the metrics remain after them
        // once written, real's tables keep only what the metrics read: that memory is free again
        // before pred's energy distances, the peak of the run
        let real_csv = scope.spawn(move || -> anyhow::Result<Summaries> {
            write_de(&real, "real_de.csv")?;
            for (_, s) in &mut real {
                if let Some(de) = &mut s.de {
                    de.keep_metric_columns();
                }
            }
            Ok(real)
        });
        let (pred, _) = summarize_file(
            &args.pred,
            "pred",
            shared.as_ref().map(|s| &s.1),
            de_pred.is_some(),
            Some("pred_de.csv"),
            Some(spare),
        )?;
        let real = real_csv
            .join()
            .map_err(|_| anyhow::anyhow!("the DE CSV writer panicked"))??;
        evaluate_all(&real, &pred)?;
        Ok(())
    })?;
    tracing::info!("eval done in {:.1}s", t0.elapsed().as_secs_f64());
    Ok(())
}
