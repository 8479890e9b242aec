//! Highly variable genes as scanpy 1.11's `pp.highly_variable_genes` selects them.
//!
//! - `Seurat` (scanpy's default flavor) expects log1p data: dispersion `var/mean` of `expm1(x)`, its log,
//!   genes binned by `log1p(mean)` into `n_bins` equal-width bins (`pandas.cut`), dispersion normalised
//!   per bin by the bin's mean and standard deviation (a bin with one gene gives it 1); then either the
//!   `n_top_genes` largest normalised dispersions (ties at the cutoff all kept, NaN never) or the
//!   `min_mean/max_mean/min_disp/max_disp` cutoffs (NaN treated as 0).
//! - `SeuratV3` expects counts: a loess fit (span 0.3, degree 2) of log10 variance on log10 mean gives
//!   a regularised standard deviation; counts are clipped at `mean + sd·sqrt(n)` and the variance of the
//!   standardised values ranks the genes; the `n_top_genes` best ranks are selected.
//!
//! With batches: `Seurat` runs per batch on that batch's expressed genes and combines (mean statistics,
//! number of batches selecting a gene, ties broken by mean normalised dispersion, then gene name as
//! pandas' stable sort after a `groupby` does); `SeuratV3` ranks within each batch and sorts by the
//! median rank among batches where a gene made the top `n_top_genes`, then by that number of batches.
//! Remaining ties in `SeuratV3` ranks are broken by gene order (numpy's unstable argsort may differ).

use scale_io::Matrix;

use crate::loess::{loess_fit, LoessOptions, LoessSurface};
use crate::stats::{check_finite, col_mean_var, col_n_positive};
use crate::PrepError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HvgFlavor {
    Seurat,
    SeuratV3,
}

impl HvgFlavor {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "seurat" => Some(Self::Seurat),
            "seurat_v3" => Some(Self::SeuratV3),
            _ => None,
        }
    }
}

/// Options with scanpy's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct HvgOptions {
    pub flavor: HvgFlavor,
    /// Required for `SeuratV3` (scanpy's default 2000 applies when `None`); for `Seurat`, `None` selects
    /// by the cutoffs below.
    pub n_top_genes: Option<usize>,
    pub min_mean: f64,
    pub max_mean: f64,
    pub min_disp: f64,
    pub max_disp: f64,
    pub n_bins: usize,
    pub span: f64,
    pub loess_surface: LoessSurface,
}

impl Default for HvgOptions {
    fn default() -> Self {
        Self {
            flavor: HvgFlavor::Seurat,
            n_top_genes: None,
            min_mean: 0.0125,
            max_mean: 3.0,
            min_disp: 0.5,
            max_disp: f64::INFINITY,
            n_bins: 20,
            span: 0.3,
            loess_surface: LoessSurface::Interpolate,
        }
    }
}

/// Per-gene results, every vector `[n_vars]`, named as scanpy names the `var` columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HvgResult {
    pub highly_variable: Vec<bool>,
    pub means: Vec<f64>,
    /// `Seurat`: log dispersions and normalised dispersions.
    pub dispersions: Option<Vec<f64>>,
    pub dispersions_norm: Option<Vec<f64>>,
    /// `SeuratV3`: variances, normalised variances (mean over batches) and rank (median over batches).
    pub variances: Option<Vec<f64>>,
    pub variances_norm: Option<Vec<f64>>,
    pub highly_variable_rank: Option<Vec<f64>>,
    /// With batches: in how many batches each gene was selected.
    pub highly_variable_nbatches: Option<Vec<usize>>,
}

impl HvgResult {
    pub fn selected(&self) -> Vec<usize> {
        (0..self.highly_variable.len())
            .filter(|&i| self.highly_variable[i])
            .collect()
    }
}

/// Selects highly variable genes of `m` (cells × genes). `batches`: one code per cell (any integers;
/// batches are processed in increasing code order, like sorted categories). `var_names` break ties
/// as pandas does in the batched `Seurat` flavor.
pub fn highly_variable_genes(
    m: &Matrix,
    var_names: &[String],
    opts: &HvgOptions,
    batches: Option<&[u32]>,
) -> Result<HvgResult, PrepError> {
    check_finite(m, "highly_variable_genes input")?;
    if var_names.len() != m.n_cols() {
        return Err(PrepError::Shape {
            what: "var_names".into(),
            expected: format!("{} names (one per gene)", m.n_cols()),
            found: var_names.len().to_string(),
        });
    }
    if m.n_rows() < 2 {
        return Err(PrepError::Invalid {
            what: "highly_variable_genes".into(),
            message: format!("needs at least 2 cells, got {}", m.n_rows()),
        });
    }
    if opts.n_bins == 0 {
        return Err(PrepError::InvalidOption {
            option: "n_bins".into(),
            message: "must be at least 1".into(),
        });
    }
    let groups = match batches {
        None => None,
        Some(b) => {
            if b.len() != m.n_rows() {
                return Err(PrepError::Shape {
                    what: "batch labels".into(),
                    expected: format!("{} (one per cell)", m.n_rows()),
                    found: b.len().to_string(),
                });
            }
            let mut codes: Vec<u32> = b.to_vec();
            codes.sort_unstable();
            codes.dedup();
            Some(
                codes
                    .iter()
                    .map(|&c| (0..b.len()).filter(|&i| b[i] == c).collect::<Vec<usize>>())
                    .collect::<Vec<_>>(),
            )
        }
    };
    match opts.flavor {
        HvgFlavor::Seurat => match groups {
            None => {
                let r = seurat_single(m, None, false, opts)?;
                Ok(HvgResult {
                    highly_variable: r.hv,
                    means: r.means,
                    dispersions: Some(r.disp),
                    dispersions_norm: Some(r.disp_norm),
                    ..Default::default()
                })
            }
            Some(g) => seurat_batched(m, var_names, &g, opts),
        },
        HvgFlavor::SeuratV3 => {
            let g = groups.unwrap_or_else(|| vec![(0..m.n_rows()).collect()]);
            seurat_v3(m, &g, batches.is_some(), opts)
        }
    }
}

struct SingleBatch {
    hv: Vec<bool>,
    means: Vec<f64>,
    disp: Vec<f64>,
    disp_norm: Vec<f64>,
}

/// `_highly_variable_genes_single_batch` with flavor "seurat"; with `filter`, genes not expressed in
/// `rows` are left out of the computation and reported as zeros (as scanpy does).
fn seurat_single(
    m: &Matrix,
    rows: Option<&[usize]>,
    filter: bool,
    opts: &HvgOptions,
) -> Result<SingleBatch, PrepError> {
    let n_vars = m.n_cols();
    // scanpy undoes the log in float32: expm1 of the stored float32 value, rounded to float32
    let (mean_all, var_all) = col_mean_var(m, rows, |v| v.exp_m1());
    let keep: Vec<usize> = if filter {
        let pos = col_n_positive(m, rows);
        (0..n_vars).filter(|&j| pos[j] >= 1).collect()
    } else {
        (0..n_vars).collect()
    };
    let mut means = Vec::with_capacity(keep.len());
    let mut disp = Vec::with_capacity(keep.len());
    for &j in &keep {
        let mut mu = mean_all[j];
        if mu == 0.0 {
            mu = 1e-12;
        }
        let mut d = var_all[j] / mu;
        if d == 0.0 {
            d = f64::NAN;
        }
        disp.push(d.ln());
        means.push(mu.ln_1p());
    }
    let bins = pandas_cut(&means, opts.n_bins);
    // per-bin mean and sample standard deviation of the non-NaN dispersions
    let nb = opts.n_bins;
    let (mut cnt, mut sum) = (vec![0usize; nb], vec![0f64; nb]);
    let mut present = vec![false; nb];
    for (i, &b) in bins.iter().enumerate() {
        present[b] = true;
        if !disp[i].is_nan() {
            cnt[b] += 1;
            sum[b] += disp[i];
        }
    }
    let avg: Vec<f64> = (0..nb)
        .map(|b| if cnt[b] > 0 { sum[b] / cnt[b] as f64 } else { f64::NAN })
        .collect();
    let mut ss = vec![0f64; nb];
    for (i, &b) in bins.iter().enumerate() {
        if !disp[i].is_nan() {
            ss[b] += (disp[i] - avg[b]) * (disp[i] - avg[b]);
        }
    }
    let mut avg_used = avg.clone();
    let mut dev: Vec<f64> = (0..nb)
        .map(|b| {
            if cnt[b] > 1 {
                (ss[b] / (cnt[b] - 1) as f64).sqrt()
            } else {
                f64::NAN
            }
        })
        .collect();
    for b in 0..nb {
        // a bin whose standard deviation is undefined: its gene gets normalised dispersion 1
        if present[b] && dev[b].is_nan() {
            dev[b] = avg[b];
            avg_used[b] = 0.0;
        }
    }
    let disp_norm: Vec<f64> = bins
        .iter()
        .enumerate()
        .map(|(i, &b)| (disp[i] - avg_used[b]) / dev[b])
        .collect();
    let hv_kept = subset_genes(&means, &disp_norm, opts);
    // scatter back to all genes; filtered genes are zeros
    let mut out = SingleBatch {
        hv: vec![false; n_vars],
        means: vec![0.0; n_vars],
        disp: vec![0.0; n_vars],
        disp_norm: vec![0.0; n_vars],
    };
    for (i, &j) in keep.iter().enumerate() {
        out.hv[j] = hv_kept[i];
        out.means[j] = means[i];
        out.disp[j] = disp[i];
        out.disp_norm[j] = disp_norm[i];
    }
    Ok(out)
}

/// `pandas.cut(x, bins=n)` bin codes (right-closed, lowest edge widened by 0.1% of the range).
fn pandas_cut(x: &[f64], n_bins: usize) -> Vec<usize> {
    if x.is_empty() {
        return Vec::new();
    }
    let mut mn = x.iter().cloned().fold(f64::INFINITY, f64::min);
    let mut mx = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let same = mn == mx;
    if same {
        mn -= if mn != 0.0 { 0.001 * mn.abs() } else { 0.001 };
        mx += if mx != 0.0 { 0.001 * mx.abs() } else { 0.001 };
    }
    // numpy.linspace: start + i·step, last edge set to stop exactly
    let step = (mx - mn) / n_bins as f64;
    let mut edges: Vec<f64> = (0..=n_bins).map(|i| i as f64 * step + mn).collect();
    edges[n_bins] = mx;
    if !same {
        edges[0] -= (mx - mn) * 0.001;
    }
    x.iter()
        .map(|&v| {
            // searchsorted(side="left") − 1: the number of edges strictly below v, minus one
            let ids = edges.partition_point(|&e| e < v);
            ids.clamp(1, n_bins) - 1
        })
        .collect()
}

/// `_subset_genes`: the top-n or cutoff rule on normalised dispersions.
fn subset_genes(means: &[f64], disp_norm: &[f64], opts: &HvgOptions) -> Vec<bool> {
    match opts.n_top_genes {
        None => disp_norm
            .iter()
            .zip(means)
            .map(|(&d, &mu)| {
                let d = nan_to_num(d);
                mu > opts.min_mean && mu < opts.max_mean && d > opts.min_disp && d < opts.max_disp
            })
            .collect(),
        Some(n_top) => {
            let n_top = n_top.min(disp_norm.len());
            let mut vals: Vec<f64> = disp_norm.iter().cloned().filter(|v| !v.is_nan()).collect();
            let n = n_top.min(vals.len());
            if n == 0 {
                return vec![false; disp_norm.len()];
            }
            vals.sort_by(|a, b| b.total_cmp(a));
            let cut = vals[n - 1];
            disp_norm.iter().map(|&d| !d.is_nan() && d >= cut).collect()
        }
    }
}

fn nan_to_num(v: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else if v == f64::INFINITY {
        f64::MAX
    } else if v == f64::NEG_INFINITY {
        f64::MIN
    } else {
        v
    }
}

fn nanmean(vals: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0, 0usize);
    for v in vals.filter(|v| !v.is_nan()) {
        s += v;
        c += 1;
    }
    if c == 0 {
        f64::NAN
    } else {
        s / c as f64
    }
}

/// `_highly_variable_genes_batched` for flavor "seurat".
fn seurat_batched(
    m: &Matrix,
    var_names: &[String],
    groups: &[Vec<usize>],
    opts: &HvgOptions,
) -> Result<HvgResult, PrepError> {
    let n_vars = m.n_cols();
    let per: Vec<SingleBatch> = groups
        .iter()
        .map(|rows| seurat_single(m, Some(rows), true, opts))
        .collect::<Result<_, _>>()?;
    let nb = per.len();
    let means: Vec<f64> = (0..n_vars)
        .map(|j| per.iter().map(|p| p.means[j]).sum::<f64>() / nb as f64)
        .collect();
    let disp: Vec<f64> = (0..n_vars).map(|j| nanmean(per.iter().map(|p| p.disp[j]))).collect();
    let mut disp_norm: Vec<f64> = (0..n_vars)
        .map(|j| nanmean(per.iter().map(|p| p.disp_norm[j])))
        .collect();
    let nbatches: Vec<usize> = (0..n_vars).map(|j| per.iter().filter(|p| p.hv[j]).count()).collect();
    let hv = match opts.n_top_genes {
        Some(n_top) => {
            // pandas: groupby sorts by gene name, then a stable sort on (nbatches desc, disp_norm desc,
            // NaN last), so remaining ties go by gene name
            let mut order: Vec<usize> = (0..n_vars).collect();
            order.sort_by(|&a, &b| {
                nbatches[b]
                    .cmp(&nbatches[a])
                    .then_with(|| desc_nan_last(disp_norm[a], disp_norm[b]))
                    .then_with(|| var_names[a].cmp(&var_names[b]))
            });
            let mut hv = vec![false; n_vars];
            order.iter().take(n_top).for_each(|&j| hv[j] = true);
            hv
        }
        None => {
            disp_norm.iter_mut().filter(|v| v.is_nan()).for_each(|v| *v = 0.0);
            (0..n_vars)
                .map(|j| {
                    let d = disp_norm[j];
                    means[j] > opts.min_mean && means[j] < opts.max_mean && d > opts.min_disp && d < opts.max_disp
                })
                .collect()
        }
    };
    Ok(HvgResult {
        highly_variable: hv,
        means,
        dispersions: Some(disp),
        dispersions_norm: Some(disp_norm),
        highly_variable_nbatches: Some(nbatches),
        ..Default::default()
    })
}

/// Descending order with NaN after every number.
fn desc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => b.total_cmp(&a),
    }
}

/// `_highly_variable_genes_seurat_v3` (flavor "seurat_v3").
fn seurat_v3(m: &Matrix, groups: &[Vec<usize>], batched: bool, opts: &HvgOptions) -> Result<HvgResult, PrepError> {
    let n_vars = m.n_cols();
    let n_top = opts.n_top_genes.unwrap_or(2000);
    let (means, variances) = col_mean_var(m, None, |v| v);
    // [n_batches][n_vars]
    let mut norm_vars: Vec<Vec<f64>> = Vec::with_capacity(groups.len());
    for (bi, rows) in groups.iter().enumerate() {
        let n_obs = rows.len();
        if n_obs < 2 {
            return Err(PrepError::Invalid {
                what: "highly_variable_genes (seurat_v3)".into(),
                message: format!("batch {bi} has {n_obs} cell(s); each batch needs at least 2"),
            });
        }
        let (mean, var) = col_mean_var(m, Some(rows), |v| v);
        let nc: Vec<usize> = (0..n_vars).filter(|&j| var[j] > 0.0).collect();
        let x: Vec<f64> = nc.iter().map(|&j| mean[j].log10()).collect();
        let y: Vec<f64> = nc.iter().map(|&j| var[j].log10()).collect();
        let fitted = loess_fit(
            &x,
            &y,
            &LoessOptions {
                span: opts.span,
                degree: 2,
                surface: opts.loess_surface,
                cell: 0.2,
            },
        )
        .map_err(|e| PrepError::Loess(format!("batch {bi} ({} non-constant genes): {e}", nc.len())))?;
        let mut est = vec![0f64; n_vars];
        for (k, &j) in nc.iter().enumerate() {
            est[j] = fitted[k];
        }
        let reg_std: Vec<f64> = est.iter().map(|&e| 10f64.powf(e).sqrt()).collect();
        let vmax = (n_obs as f64).sqrt();
        let clip: Vec<f64> = (0..n_vars).map(|j| reg_std[j] * vmax + mean[j]).collect();
        let (mut s, mut sq) = (vec![0f64; n_vars], vec![0f64; n_vars]);
        for &r in rows {
            let mut add = |j: usize, v: f32| {
                let e = (v as f64).min(clip[j]);
                sq[j] += e * e;
                s[j] += e;
            };
            match m {
                Matrix::Csr(c) => {
                    let (idx, vals) = c.row(r);
                    idx.iter().zip(vals).for_each(|(&j, &v)| add(j as usize, v));
                }
                Matrix::Dense(d) => d.row(r).iter().enumerate().for_each(|(j, &v)| add(j, v)),
            }
        }
        let nf = n_obs as f64;
        norm_vars.push(
            (0..n_vars)
                .map(|j| {
                    (1.0 / ((nf - 1.0) * reg_std[j] * reg_std[j]))
                        * (nf * mean[j] * mean[j] + sq[j] - 2.0 * s[j] * mean[j])
                })
                .collect(),
        );
    }
    // rank within each batch: 0 = most variable (NaN last, ties by gene order)
    let ranks: Vec<Vec<usize>> = norm_vars
        .iter()
        .map(|nv| {
            let mut order: Vec<usize> = (0..n_vars).collect();
            order.sort_by(|&a, &b| desc_nan_last(nv[a], nv[b]));
            let mut rank = vec![0usize; n_vars];
            order.iter().enumerate().for_each(|(r, &j)| rank[j] = r);
            rank
        })
        .collect();
    let nbatches: Vec<usize> = (0..n_vars)
        .map(|j| ranks.iter().filter(|r| r[j] < n_top).count())
        .collect();
    let median_rank: Vec<f64> = (0..n_vars)
        .map(|j| {
            // numpy masked median of float32 ranks below n_top
            let mut v: Vec<f32> = ranks
                .iter()
                .map(|r| r[j])
                .filter(|&r| r < n_top)
                .map(|r| r as f32)
                .collect();
            crate::stats::median_f32(&{
                v.sort_by(|a, b| a.total_cmp(b));
                v
            })
            .map(|x| x as f64)
            .unwrap_or(f64::NAN)
        })
        .collect();
    let variances_norm: Vec<f64> = (0..n_vars)
        .map(|j| norm_vars.iter().map(|nv| nv[j]).sum::<f64>() / norm_vars.len() as f64)
        .collect();
    let mut order: Vec<usize> = (0..n_vars).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (median_rank[a], median_rank[b]);
        let c = match (ra.is_nan(), rb.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => ra.total_cmp(&rb),
        };
        c.then_with(|| nbatches[b].cmp(&nbatches[a]))
    });
    let mut hv = vec![false; n_vars];
    order.iter().take(n_top).for_each(|&j| hv[j] = true);
    Ok(HvgResult {
        highly_variable: hv,
        means,
        variances: Some(variances),
        variances_norm: Some(variances_norm),
        highly_variable_rank: Some(median_rank),
        highly_variable_nbatches: batched.then_some(nbatches),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pandas_cut_edges() {
        // right-closed bins; the minimum lands in bin 0 and the maximum in the last bin
        let b = pandas_cut(&[0.0, 0.5, 1.0, 0.05, 0.0500001], 20);
        assert_eq!(b, vec![0, 9, 19, 0, 1]);
        assert_eq!(pandas_cut(&[2.0, 2.0], 20), vec![9, 9]);
    }

    #[test]
    fn top_n_keeps_ties_and_skips_nan() {
        let o = HvgOptions {
            n_top_genes: Some(2),
            ..Default::default()
        };
        let hv = subset_genes(&[1.0; 4], &[f64::NAN, 2.0, 1.0, 1.0], &o);
        assert_eq!(hv, vec![false, true, true, true]);
    }
}
