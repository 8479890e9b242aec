//! The per-perturbation metrics, computed from per-file summaries (DE tables, pseudobulk means,
//! energy distances). Float32 casts mirror cell-eval: DE columns are cast to Float32 before any
//! metric (so significance is `fdr_f32 < 0.05`), pseudobulk means are Float32 (polars `mean` of a
//! Float32 column) and deltas are taken in float32.

use rayon::prelude::*;

use crate::clustering;
use crate::de::{DeBlock, DeTable};
use crate::error::{EvalError, Result};
use crate::results::ResultsTable;
use crate::stats::{average_precision, pearson, roc_auc, spearman};
use crate::FileSummary;

const FDR: f32 = 0.05;

/// One DE block prepared for the metrics.
struct DeView<'a> {
    block: &'a DeBlock,
    lfc: Vec<f32>,
    fdr: Vec<f32>,
    /// Significant rows ordered by |lfc| descending, ties in table order, NaN first (polars
    /// ordinal rank).
    ranked_sig: Vec<usize>,
}

impl<'a> DeView<'a> {
    fn new(block: &'a DeBlock) -> Self {
        let lfc: Vec<f32> = block.log2_fold_change.iter().map(|&v| v as f32).collect();
        let fdr: Vec<f32> = block.fdr.iter().map(|&v| v as f32).collect();
        let mut ranked_sig: Vec<usize> = (0..block.len()).filter(|&i| fdr[i] < FDR).collect();
        let key = |i: usize| {
            let a = lfc[i].abs();
            if a.is_nan() {
                f32::INFINITY
            } else {
                a
            }
        };
        // NaN ranks before +inf in polars' descending order
        ranked_sig.sort_by(|&a, &b| {
            let (na, nb) = (lfc[a].is_nan(), lfc[b].is_nan());
            nb.cmp(&na).then(key(b).total_cmp(&key(a)))
        });
        DeView {
            block,
            lfc,
            fdr,
            ranked_sig,
        }
    }

    fn sig_features(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranked_sig.iter().map(|&i| self.block.feature[i])
    }
}

/// Maps the pred table's feature ids onto the real table's (they differ when read from CSVs).
fn align_features(real: &DeTable, pred: &DeTable) -> Vec<u32> {
    let map: std::collections::HashMap<&str, u32> = real
        .features
        .iter()
        .enumerate()
        .map(|(i, f)| (f.as_str(), i as u32))
        .collect();
    pred.features
        .iter()
        .map(|f| map.get(f.as_str()).copied().unwrap_or(u32::MAX))
        .collect()
}

/// Computes the DE metrics of `plan` into `out` (rows = `perts`, sorted).
pub fn de_metrics(
    real: &DeTable,
    pred: &DeTable,
    perts: &[String],
    plan: &[&str],
    out: &mut ResultsTable,
) -> Result<()> {
    let mut real_targets: Vec<&str> = real.blocks.iter().map(|b| b.target.as_str()).collect();
    let mut pred_targets: Vec<&str> = pred.blocks.iter().map(|b| b.target.as_str()).collect();
    real_targets.sort();
    pred_targets.sort();
    if real_targets != pred_targets {
        return Err(EvalError::DeMismatch(format!(
            "targets of the real DE table {real_targets:?} differ from the pred DE table's {pred_targets:?}"
        )));
    }
    let perts_ref: Vec<&str> = perts.iter().map(|s| s.as_str()).collect();
    if real_targets != perts_ref {
        return Err(EvalError::DeMismatch(format!(
            "DE table targets {real_targets:?} differ from the data's perturbations {perts_ref:?}"
        )));
    }
    let nf = real.features.len();
    let pmap = align_features(real, pred);
    let rv: Vec<DeView> = perts
        .iter()
        .map(|p| DeView::new(real.block(p).expect("checked")))
        .collect();
    let pv: Vec<DeView> = perts
        .iter()
        .map(|p| DeView::new(pred.block(p).expect("checked")))
        .collect();
    // pred rows indexed by real feature id
    let prow: Vec<Vec<u32>> = pv
        .iter()
        .map(|v| {
            let mut rows = vec![u32::MAX; nf];
            for (i, &f) in v.block.feature.iter().enumerate() {
                let rf = pmap[f as usize];
                if rf != u32::MAX {
                    rows[rf as usize] = i as u32;
                }
            }
            rows
        })
        .collect();
    let pred_sig_real_ids: Vec<Vec<u32>> = pv
        .iter()
        .map(|v| v.sig_features().map(|f| pmap[f as usize]).collect())
        .collect();
    let n = perts.len();
    let any_real_sig = rv.iter().any(|v| !v.ranked_sig.is_empty());
    let any_pred_sig = pv.iter().any(|v| !v.ranked_sig.is_empty());
    let mut mark = vec![false; nf];

    for &name in plan {
        match name {
            _ if name.starts_with("overlap_at_") || name.starts_with("precision_at_") => {
                let (precision, k) = match name.split_once("_at_") {
                    Some((m, k)) => (m == "precision", k.parse::<usize>().ok()),
                    None => unreachable!(),
                };
                let mut col = Vec::with_capacity(n);
                for i in 0..n {
                    if !any_real_sig || !any_pred_sig {
                        col.push(Some(0.0));
                        continue;
                    }
                    let real_genes: Vec<u32> = rv[i].sig_features().collect();
                    let pred_genes = &pred_sig_real_ids[i];
                    let base = if precision { pred_genes.len() } else { real_genes.len() };
                    let k_eff = k.map(|k| k.min(base)).unwrap_or(base);
                    if k_eff == 0 {
                        col.push(Some(0.0));
                        continue;
                    }
                    let rs = &real_genes[..k_eff.min(real_genes.len())];
                    let ps = &pred_genes[..k_eff.min(pred_genes.len())];
                    for &f in rs {
                        mark[f as usize] = true;
                    }
                    let mut hit = 0usize;
                    for &f in ps {
                        if f != u32::MAX && mark[f as usize] {
                            hit += 1;
                            mark[f as usize] = false; // count each shared gene once
                        }
                    }
                    for &f in rs {
                        mark[f as usize] = false;
                    }
                    col.push(Some(hit as f64 / k_eff as f64));
                }
                out.columns.push((name.to_string(), col));
            }
            "de_spearman_sig" => {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                for i in 0..n {
                    if !rv[i].ranked_sig.is_empty() {
                        a.push(rv[i].ranked_sig.len() as f64);
                        b.push(pv[i].ranked_sig.len() as f64);
                    }
                }
                // no real significant genes anywhere: cell-eval scores perfect agreement
                let v = if a.is_empty() { 1.0 } else { spearman(&a, &b) };
                out.columns.push((name.to_string(), vec![Some(v); n]));
            }
            "de_direction_match" | "de_spearman_lfc_sig" | "de_sig_genes_recall" => {
                let mut col = Vec::with_capacity(n);
                for i in 0..n {
                    let r = &rv[i];
                    if r.ranked_sig.is_empty() {
                        col.push(None);
                        continue;
                    }
                    let v = match name {
                        "de_direction_match" => {
                            // inner join with every pred row (significant or not)
                            let mut hits = 0usize;
                            let mut total = 0usize;
                            for &ri in &r.ranked_sig {
                                let f = r.block.feature[ri] as usize;
                                let pr = prow[i][f];
                                if pr == u32::MAX {
                                    continue;
                                }
                                total += 1;
                                if sign(r.lfc[ri]) == sign(pv[i].lfc[pr as usize]) {
                                    hits += 1;
                                }
                            }
                            if total == 0 {
                                None
                            } else {
                                Some(hits as f64 / total as f64)
                            }
                        }
                        "de_spearman_lfc_sig" => {
                            let mut a = Vec::new();
                            let mut b = Vec::new();
                            // table order does not matter for a correlation
                            for &ri in &r.ranked_sig {
                                let f = r.block.feature[ri] as usize;
                                let pr = prow[i][f];
                                a.push(r.lfc[ri] as f64);
                                b.push(if pr == u32::MAX {
                                    0.0
                                } else {
                                    pv[i].lfc[pr as usize] as f64
                                });
                            }
                            Some(spearman(&a, &b))
                        }
                        _ => {
                            let mut hit = 0usize;
                            for &ri in &r.ranked_sig {
                                let f = r.block.feature[ri] as usize;
                                let pr = prow[i][f];
                                if pr != u32::MAX && pv[i].fdr[pr as usize] < FDR {
                                    hit += 1;
                                }
                            }
                            Some(hit as f64 / r.ranked_sig.len() as f64)
                        }
                    };
                    col.push(v);
                }
                out.columns.push((name.to_string(), col));
            }
            "de_nsig_counts" => {
                out.columns.push((
                    "de_nsig_counts_real".into(),
                    rv.iter().map(|v| Some(v.ranked_sig.len() as f64)).collect(),
                ));
                out.columns.push((
                    "de_nsig_counts_pred".into(),
                    pv.iter().map(|v| Some(v.ranked_sig.len() as f64)).collect(),
                ));
            }
            "pr_auc" | "roc_auc" => {
                let mut col = Vec::with_capacity(n);
                for i in 0..n {
                    let r = &rv[i];
                    if r.block.is_empty() {
                        col.push(Some(f64::NAN));
                        continue;
                    }
                    let labels: Vec<bool> = r.fdr.iter().map(|&q| q < FDR).collect();
                    let scores: Vec<f64> = r
                        .block
                        .feature
                        .iter()
                        .map(|&f| {
                            let pr = prow[i][f as usize];
                            let q = if pr == u32::MAX { 1.0f32 } else { pv[i].fdr[pr as usize] };
                            // float32 throughout, like the polars expression
                            let q = q.clamp(1e-10f32, 1.0f32);
                            (-q.log10()) as f64
                        })
                        .collect();
                    let npos = labels.iter().filter(|&&l| l).count();
                    if npos == 0 || npos == labels.len() {
                        col.push(Some(f64::NAN));
                        continue;
                    }
                    col.push(Some(if name == "pr_auc" {
                        average_precision(&labels, &scores)
                    } else {
                        roc_auc(&labels, &scores)
                    }));
                }
                out.columns.push((name.to_string(), col));
            }
            _ => {}
        }
    }
    Ok(())
}

/// polars `sign` on Float32 (NaN stays NaN and never equals).
fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else if v == 0.0 {
        0.0
    } else {
        f32::NAN
    }
}

/// Computes the expression metrics of `plan` into `out`.
/// `genes`: gene names (the discrimination score leaves out the gene named like the perturbation).
pub fn anndata_metrics(
    real: &FileSummary,
    pred: &FileSummary,
    genes: &[String],
    perts: &[String],
    plan: &[&str],
    out: &mut ResultsTable,
) {
    let g = genes.len();
    let n = perts.len();
    let gi = |s: &FileSummary, p: &str| s.groups.names.binary_search_by(|x| x.as_str().cmp(p)).expect("checked");
    fn bulk(s: &FileSummary, k: usize, g: usize) -> &[f32] {
        &s.bulk[k * g..(k + 1) * g]
    }
    let rc = bulk(real, real.groups.control, g);
    let pc = bulk(pred, pred.groups.control, g);
    // float32 rows, as polars/numpy hold them
    let real_p: Vec<&[f32]> = perts.iter().map(|p| bulk(real, gi(real, p), g)).collect();
    let pred_p: Vec<&[f32]> = perts.iter().map(|p| bulk(pred, gi(pred, p), g)).collect();
    let delta = |x: &[f32], c: &[f32]| -> Vec<f32> { x.iter().zip(c).map(|(a, b)| a - b).collect() };
    let real_d: Vec<Vec<f32>> = real_p.iter().map(|x| delta(x, rc)).collect();
    let pred_d: Vec<Vec<f32>> = pred_p.iter().map(|x| delta(x, pc)).collect();
    let f64v = |x: &[f32]| -> Vec<f64> { x.iter().map(|&v| v as f64).collect() };

    for &name in plan {
        let started = std::time::Instant::now();
        let col: Vec<Option<f64>> = match name {
            "pearson_delta" => (0..n)
                .map(|i| Some(pearson(&f64v(&pred_d[i]), &f64v(&real_d[i]))))
                .collect(),
            "mse" | "mae" | "mse_delta" | "mae_delta" => (0..n)
                .map(|i| {
                    let (x, y) = if name.ends_with("_delta") {
                        (pred_d[i].as_slice(), real_d[i].as_slice())
                    } else {
                        (pred_p[i], real_p[i])
                    };
                    let s: f64 = x
                        .iter()
                        .zip(y)
                        .map(|(&a, &b)| {
                            let d = a as f64 - b as f64;
                            if name.starts_with("mse") {
                                d * d
                            } else {
                                d.abs()
                            }
                        })
                        .sum();
                    Some(s / g as f64)
                })
                .collect(),
            "discrimination_score_l1" | "discrimination_score_l2" | "discrimination_score_cosine" => {
                let metric = name.rsplit('_').next().unwrap_or("l1");
                // n x n distances over all genes: the costly expression metric, one row per task
                (0..n)
                    .into_par_iter()
                    .map(|i| {
                        // the genes kept (all but the perturbation's own gene) as runs of consecutive
                        // genes, so the sums below stream contiguous slices
                        let mut keep: Vec<std::ops::Range<usize>> = Vec::new();
                        let mut start = 0;
                        for k in (0..g).filter(|&k| genes[k] == perts[i]) {
                            keep.push(start..k);
                            start = k + 1;
                        }
                        keep.push(start..g);
                        let x = &pred_d[i];
                        let kept = |v: &[f32]| -> f64 {
                            keep.iter()
                                .map(|r| lane_sum(&v[r.clone()], &v[r.clone()], |u, w| u * w))
                                .sum()
                        };
                        // the prediction's own squared norm, for the cosine
                        let xx = if metric == "cosine" { kept(x) } else { 0.0 };
                        let dists: Vec<f64> = (0..n)
                            .map(|q| {
                                let y = &real_d[q];
                                let runs = || keep.iter().map(|r| (&x[r.clone()], &y[r.clone()]));
                                match metric {
                                    "l1" => runs().map(|(a, b)| lane_sum(a, b, |u, v| (v - u).abs())).sum(),
                                    "l2" => runs()
                                        .map(|(a, b)| lane_sum(a, b, |u, v| (v - u) * (v - u)))
                                        .sum::<f64>()
                                        .sqrt(),
                                    _ => {
                                        let xy: f64 = runs().map(|(a, b)| lane_sum(a, b, |u, v| u * v)).sum();
                                        let yy = kept(y);
                                        // sklearn normalises zero vectors to zero: similarity 0
                                        let den = xx.sqrt() * yy.sqrt();
                                        let sim = if den == 0.0 { 0.0 } else { xy / den };
                                        (1.0 - sim).clamp(0.0, 2.0)
                                    }
                                }
                            })
                            .collect();
                        // rank of the true perturbation among the ascending distances (stable)
                        let mine = dists[i];
                        let rank = (0..n)
                            .filter(|&q| dists[q] < mine || (dists[q] == mine && q < i))
                            .count();
                        Some(1.0 - rank as f64 / n as f64)
                    })
                    .collect()
            }
            "pearson_edistance" => {
                let (Some(er), Some(ep)) = (&real.edist, &pred.edist) else {
                    continue;
                };
                let a: Vec<f64> = perts.iter().map(|p| er[gi(real, p)]).collect();
                let b: Vec<f64> = perts.iter().map(|p| ep[gi(pred, p)]).collect();
                vec![Some(pearson(&a, &b)); n]
            }
            // one value over all perturbations, broadcast to every row (cell-eval's scalar metric)
            "clustering_agreement" => {
                let (Some(cr), Some(cp)) = (&real.centroids, &pred.centroids) else {
                    continue;
                };
                let rows = |c: &[f64], s: &FileSummary| -> Vec<f64> {
                    perts
                        .iter()
                        .flat_map(|p| c[gi(s, p) * g..(gi(s, p) + 1) * g].iter().copied())
                        .collect()
                };
                match clustering::clustering_agreement(&rows(cr, real), &rows(cp, pred), n) {
                    Some(v) => vec![Some(v); n],
                    None => {
                        tracing::warn!(
                            "clustering_agreement needs at least 3 perturbations; the column is left out, as \
                             cell-eval leaves out a metric that fails"
                        );
                        continue;
                    }
                }
            }
            _ => continue,
        };
        tracing::debug!("{name} in {:.3}s", started.elapsed().as_secs_f64());
        out.columns.push((name.to_string(), col));
    }
}

/// `sum_k f(a[k], b[k])` in float64 over 8 independent partial sums (so the loop vectorises; the
/// order differs from a sequential sum by float64 rounding only, and identical inputs still give
/// identical sums, which keeps exact ties exact).
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f64, f64) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += f(x[l] as f64, y[l] as f64);
        }
    }
    let mut tail = 0.0;
    for (&x, &y) in ra.iter().zip(rb) {
        tail += f(x as f64, y as f64);
    }
    acc.iter().sum::<f64>() + tail
}
