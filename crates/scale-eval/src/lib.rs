//! scale-eval: cell-eval 0.8.2 compatible evaluation of perturbation predictions.
//!
//! - [`de`]: pdex-compatible differential expression (Mann-Whitney U + BH FDR), sparse and parallel.
//! - [`metrics`]: the per-perturbation metrics of cell-eval's profiles.
//! - [`results`]: `results.csv` / `agg_results.csv` (polars `describe()`).
//! - [`baseline`], [`score`]: `cell-eval baseline` and `cell-eval score`.
//!
//! In-process use (e.g. validation during training): build [`EvalData`] views over in-memory
//! matrices and call [`evaluate`]. For low peak memory over files, [`summarize`] one file at a time
//! (the matrix can be dropped afterwards) and call [`evaluate_summaries`].

pub mod baseline;
pub mod clustering;
pub mod de;
pub mod direct;
pub mod edistance;
pub mod error;
pub mod fmt;
pub mod groups;
pub mod load;
pub mod metrics;
pub mod profile;
pub mod results;
pub mod score;
pub mod stats;

use rayon::prelude::*;
use scale_io::Matrix;

pub use de::{DeBlock, DeTable};
pub use error::{EvalError, Result};
pub use groups::Groups;
pub use profile::Profile;
pub use results::{AggTable, ResultsTable};

/// Progress reporting hook (the CLI maps it onto progress bars; libraries stay silent).
pub trait Progress: Sync {
    fn start(&self, _stage: &str, _len: u64) {}
    fn inc(&self, _n: u64) {}
    fn finish(&self) {}
}

/// A [`Progress`] that reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// One side (real or predicted) of an evaluation, borrowed.
#[derive(Clone, Copy)]
pub struct EvalData<'a> {
    /// "real" or "pred", used in messages.
    pub which: &'a str,
    /// Cells × genes, log1p of normalised expression (see [`ensure_log1p`]).
    pub x: &'a Matrix,
    /// Perturbation label per cell.
    pub labels: &'a [String],
    /// Gene names, one per column.
    pub genes: &'a [String],
    /// Cell names for error messages (optional).
    pub cell_names: Option<&'a [String]>,
}

/// What to compute.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    pub control: String,
    pub profile: Profile,
    pub skip_metrics: Vec<String>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            control: "non-targeting".into(),
            profile: Profile::Full,
            skip_metrics: Vec::new(),
        }
    }
}

/// Everything the metrics need from one file; the matrix itself is not kept.
#[derive(Debug, Clone)]
pub struct FileSummary {
    pub groups: Groups,
    /// Pseudobulk: mean of X per group, float32 like polars' mean of a Float32 column.
    /// Shape `[group][gene]` flattened, groups as in `groups.names`.
    pub bulk: Vec<f32>,
    /// Energy distance to control per group (NaN for the control), when the plan needs it.
    pub edist: Option<Vec<f64>>,
    /// Float64 mean of X per group (cell-eval's clustering centroids), when the plan has
    /// `clustering_agreement`. Same layout as `bulk`.
    pub centroids: Option<Vec<f64>>,
    /// DE table, when the plan needs it and none was supplied.
    pub de: Option<DeTable>,
}

/// The metric names to compute for `cfg` in output order.
pub fn plan(cfg: &EvalConfig) -> Vec<&'static str> {
    profile::plan(cfg.profile, &cfg.skip_metrics)
}

fn plan_needs_de(plan: &[&str]) -> bool {
    plan.iter().any(|m| profile::DE_METRICS.contains(m))
}

/// Checks shape, labels and values of one side: every value finite and non-negative.
pub fn validate(d: &EvalData, control: &str) -> Result<Groups> {
    if d.labels.len() != d.x.n_rows() {
        return Err(EvalError::LabelCount {
            which: d.which.into(),
            n_labels: d.labels.len(),
            n_cells: d.x.n_rows(),
        });
    }
    if d.genes.len() != d.x.n_cols() {
        return Err(EvalError::GeneCount {
            which: d.which.into(),
            n_genes: d.genes.len(),
            n_cols: d.x.n_cols(),
        });
    }
    let bad = |cell: usize, gene: usize, value: f32| -> EvalError {
        if !value.is_finite() {
            EvalError::NonFinite {
                which: d.which.into(),
                value,
                cell,
                cell_name: d.cell_names.and_then(|c| c.get(cell)).cloned().unwrap_or_default(),
                gene,
                gene_name: d.genes[gene].clone(),
            }
        } else {
            EvalError::Negative {
                which: d.which.into(),
                value,
                cell,
                gene,
                gene_name: d.genes[gene].clone(),
            }
        }
    };
    // in parallel; the error names the first bad value in row order, as a serial scan would
    let is_bad = |v: f32| !(v >= 0.0) || !v.is_finite();
    match d.x {
        Matrix::Csr(m) => {
            let first = (0..m.n_rows)
                .into_par_iter()
                .find_first(|&r| m.row(r).1.iter().any(|&v| is_bad(v)));
            if let Some(r) = first {
                let (idx, val) = m.row(r);
                if let Some((&c, &v)) = idx.iter().zip(val).find(|(_, &v)| is_bad(v)) {
                    return Err(bad(r, c as usize, v));
                }
            }
        }
        Matrix::Dense(m) => {
            if let Some(k) = m.data.par_iter().position_first(|&v| is_bad(v)) {
                return Err(bad(k / m.n_cols.max(1), k % m.n_cols.max(1), m.data[k]));
            }
        }
    }
    let groups = Groups::new(d.labels, control).ok_or_else(|| {
        let mut seen: Vec<&str> = d.labels.iter().map(|s| s.as_str()).collect();
        seen.sort();
        seen.dedup();
        seen.truncate(10);
        EvalError::ControlMissing {
            which: d.which.into(),
            control: control.into(),
            seen: seen.join(", "),
        }
    })?;
    if groups.n_perts() == 0 {
        return Err(EvalError::NoPerturbations {
            which: d.which.into(),
            control: control.into(),
        });
    }
    Ok(groups)
}

/// Mean of X per group (float64 sums, float32 result).
pub fn pseudobulk(x: &Matrix, groups: &Groups) -> Vec<f32> {
    pseudobulk_f64(x, groups).iter().map(|&m| m as f32).collect()
}

/// Mean of X per group in float64: cells summed in row order then divided by the count, the
/// arithmetic of numpy's `X.astype(float64)[mask].mean(axis=0)`.
pub fn pseudobulk_f64(x: &Matrix, groups: &Groups) -> Vec<f64> {
    let g = x.n_cols();
    let n_groups = groups.names.len();
    let mut sums = vec![0f64; n_groups * g];
    if g == 0 {
        return sums;
    }
    // groups in parallel, each summing its own cells in row order (the same sums as one pass)
    let members = groups.members();
    sums.par_chunks_mut(g)
        .zip(members.par_iter())
        .for_each(|(group_sums, rows)| {
            match x {
                Matrix::Csr(m) => {
                    for &r in rows {
                        let (idx, val) = m.row(r);
                        for (&c, &v) in idx.iter().zip(val) {
                            group_sums[c as usize] += v as f64;
                        }
                    }
                }
                Matrix::Dense(m) => {
                    for &r in rows {
                        for (s, &v) in group_sums.iter_mut().zip(m.row(r)) {
                            *s += v as f64;
                        }
                    }
                }
            }
            let n = rows.len() as f64;
            group_sums.iter_mut().for_each(|s| *s /= n);
        });
    sums
}

/// Summarises one side for `cfg`: validation, pseudobulk, DE (unless `have_de`), energy distances.
pub fn summarize(d: &EvalData, cfg: &EvalConfig, have_de: bool, progress: &dyn Progress) -> Result<FileSummary> {
    summarize_then(d, cfg, have_de, progress, None)
}

/// Work to run on the DE table beside the energy distances (writing it out, say).
pub type DeSink<'a> = &'a (dyn Fn(&DeTable) -> Result<()> + Sync);

/// [`summarize`], with `sink` run on a thread of its own on the DE table (when one is computed) while
/// the energy distances run: the table is done before them, and the cores would otherwise sit out
/// the sink's time afterwards. Its error is returned after the distances.
pub fn summarize_then(
    d: &EvalData,
    cfg: &EvalConfig,
    have_de: bool,
    progress: &dyn Progress,
    sink: Option<DeSink<'_>>,
) -> Result<FileSummary> {
    let plan = plan(cfg);
    let t = std::time::Instant::now();
    let groups = validate(d, &cfg.control)?;
    let means = pseudobulk_f64(d.x, &groups);
    let bulk: Vec<f32> = means.iter().map(|&m| m as f32).collect();
    let centroids = plan.contains(&"clustering_agreement").then_some(means);
    tracing::info!(
        "{}: validated + pseudobulk in {:.2}s",
        d.which,
        t.elapsed().as_secs_f64()
    );
    let t = std::time::Instant::now();
    let de = (plan_needs_de(&plan) && cfg.profile.needs_de() && !have_de)
        .then(|| de::differential_expression(d.x, d.genes, &groups, progress));
    tracing::info!("{}: DE in {:.2}s", d.which, t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    let energy = || {
        plan.contains(&"pearson_edistance")
            .then(|| edistance::energy_distances(d.x, &groups, progress))
    };
    let edist = match (sink, &de) {
        (Some(sink), Some(table)) => std::thread::scope(|scope| {
            let sunk = scope.spawn(|| sink(table));
            let edist = energy();
            sunk.join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
                .map(|()| edist)
        })?,
        _ => energy(),
    };
    tracing::info!("{}: energy distances in {:.2}s", d.which, t.elapsed().as_secs_f64());
    Ok(FileSummary {
        groups,
        bulk,
        edist,
        centroids,
        de,
    })
}

/// Result of an evaluation: the per-perturbation table and the DE tables that were used.
#[derive(Debug, Clone)]
pub struct EvalOutput {
    pub results: ResultsTable,
    pub agg: AggTable,
}

/// Metrics from two summaries. `de_real` / `de_pred` override the summaries' own DE tables.
pub fn evaluate_summaries(
    real: &FileSummary,
    pred: &FileSummary,
    genes: &[String],
    cfg: &EvalConfig,
    de_real: Option<&DeTable>,
    de_pred: Option<&DeTable>,
) -> Result<EvalOutput> {
    let plan = plan(cfg);
    let real_perts: Vec<String> = real.groups.perts().map(|(_, n)| n.to_string()).collect();
    let pred_perts: Vec<String> = pred.groups.perts().map(|(_, n)| n.to_string()).collect();
    if real.groups.names != pred.groups.names {
        let only = |a: &[String], b: &[String]| -> String {
            a.iter()
                .filter(|x| !b.contains(x))
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(EvalError::PertsDiffer {
            only_real: only(&real.groups.names, &pred.groups.names),
            only_pred: only(&pred.groups.names, &real.groups.names),
        });
    }
    let perts = real_perts;
    debug_assert_eq!(perts, pred_perts);
    let mut out = ResultsTable {
        perts: perts.clone(),
        columns: Vec::new(),
        n_cells: real.groups.perts().map(|(c, _)| real.groups.counts[c]).collect(),
    };
    if plan_needs_de(&plan) && cfg.profile.needs_de() {
        let dr = de_real.or(real.de.as_ref());
        let dp = de_pred.or(pred.de.as_ref());
        if let (Some(dr), Some(dp)) = (dr, dp) {
            metrics::de_metrics(dr, dp, &perts, &plan, &mut out)?;
        }
    }
    let t = std::time::Instant::now();
    metrics::anndata_metrics(real, pred, genes, &perts, &plan, &mut out);
    tracing::info!("expression metrics in {:.2}s", t.elapsed().as_secs_f64());
    let agg = out.describe();
    Ok(EvalOutput { results: out, agg })
}

/// Whole evaluation on in-memory data (both sides must have the same genes in the same order).
pub fn evaluate(
    real: &EvalData,
    pred: &EvalData,
    cfg: &EvalConfig,
    progress: &dyn Progress,
) -> Result<(EvalOutput, FileSummary, FileSummary)> {
    check_genes(real.genes, pred.genes)?;
    let rs = summarize(real, cfg, false, progress)?;
    let ps = summarize(pred, cfg, false, progress)?;
    let out = evaluate_summaries(&rs, &ps, real.genes, cfg, None, None)?;
    Ok((out, rs, ps))
}

/// Errors naming the first differing gene when the gene lists differ.
pub fn check_genes(real: &[String], pred: &[String]) -> Result<()> {
    if real == pred {
        return Ok(());
    }
    let index = real
        .iter()
        .zip(pred)
        .position(|(a, b)| a != b)
        .unwrap_or(real.len().min(pred.len()));
    Err(EvalError::GenesDiffer {
        index,
        real: real.get(index).cloned().unwrap_or_else(|| "<end>".into()),
        pred: pred.get(index).cloned().unwrap_or_else(|| "<end>".into()),
        n_real: real.len(),
        n_pred: pred.len(),
    })
}

/// How cell-eval treats the values of X (`guess_is_lognorm` + `_convert_to_normlog`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpaceAction {
    /// Fractional values in [0, 15): used as is.
    AlreadyLog1p,
    /// All values integral (fraction <= 1e-3): normalised to the median library size, then log1p.
    Normalised { target_sum: f64 },
}

/// cell-eval's rule (`guess_is_lognorm`): if no stored value has a fractional part above 1e-3 the
/// data are counts and get scanpy's `normalize_total` (target = median cell total) then `log1p`;
/// otherwise values must lie in [0, 15) or it is an error. (scale_io::detect_space differs: it needs
/// exactly integral values for counts and calls out-of-range data `Other` instead of failing.)
pub fn ensure_log1p(x: &mut Matrix, which: &str) -> Result<SpaceAction> {
    let vals = x.values();
    let has_decimals = vals.par_iter().any(|&v| v - v.trunc() > 1e-3);
    if has_decimals {
        // one parallel pass for both (f32::max / f32::min skip NaN, in any grouping)
        let (min, max) = vals
            .par_chunks(1 << 16)
            .map(|c| c.iter().fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v))))
            .reduce(|| (0f32, 0f32), |(a, b), (c, d)| (a.min(c), b.max(d)));
        if min < 0.0 {
            let k = vals.iter().position(|&v| v < 0.0).unwrap_or(0);
            return Err(EvalError::Negative {
                which: which.into(),
                value: min,
                cell: k / x.n_cols().max(1),
                gene: k % x.n_cols().max(1),
                gene_name: String::new(),
            });
        }
        if max >= 15.0 {
            return Err(EvalError::NotLog1p {
                which: which.into(),
                max,
            });
        }
        return Ok(SpaceAction::AlreadyLog1p);
    }
    // scanpy 1.11 `normalize_total` arithmetic, in float32 like scanpy on float32 data.
    // CSR: totals summed in float64 then stored as float32, target = median over all cells;
    // dense: target = median over cells with a non-zero total.
    let dense = matches!(x, Matrix::Dense(_));
    let totals: Vec<f32> = match &*x {
        Matrix::Csr(m) => m.row_sums().iter().map(|&t| t as f32).collect(),
        Matrix::Dense(m) => (0..m.n_rows)
            .map(|r| m.row(r).iter().map(|&v| v as f64).sum::<f64>() as f32)
            .collect(),
    };
    let mut pool: Vec<f32> = totals.iter().copied().filter(|&t| !dense || t > 0.0).collect();
    pool.sort_by(|a, b| a.total_cmp(b));
    let target_sum: f32 = if pool.is_empty() {
        1.0
    } else if pool.len() % 2 == 1 {
        pool[pool.len() / 2]
    } else {
        (pool[pool.len() / 2 - 1] + pool[pool.len() / 2]) / 2.0
    };
    // per-cell factor total / target; a zero total divides by 1 (scanpy leaves such cells at 0)
    let factor = |r: usize| if totals[r] > 0.0 { totals[r] / target_sum } else { 1.0 };
    match x {
        Matrix::Csr(m) => {
            for r in 0..m.n_rows {
                let f = factor(r);
                let (a, b) = (m.indptr[r] as usize, m.indptr[r + 1] as usize);
                for v in &mut m.data[a..b] {
                    *v = (*v / f).ln_1p();
                }
            }
        }
        Matrix::Dense(m) => {
            let nc = m.n_cols;
            for r in 0..m.n_rows {
                let f = factor(r);
                for v in &mut m.data[r * nc..(r + 1) * nc] {
                    *v = (*v / f).ln_1p();
                }
            }
        }
    }
    let target_sum = target_sum as f64;
    Ok(SpaceAction::Normalised { target_sum })
}

/// Runs `f` on a rayon pool of `threads` workers (`None`: rayon's default, all cores).
pub fn with_threads<R: Send>(threads: Option<usize>, f: impl FnOnce() -> R + Send) -> R {
    match threads {
        Some(n) if n > 0 => match rayon::ThreadPoolBuilder::new().num_threads(n).build() {
            Ok(pool) => pool.install(f),
            Err(e) => {
                tracing::warn!("cannot build a {n}-thread pool ({e}); using the default pool");
                f()
            }
        },
        _ => f(),
    }
}
