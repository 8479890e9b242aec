//! Statistics kernels, each matching the reference implementation cell-eval relies on (named per
//! function) operation for operation where the rounding matters.

/// Two-sided Mann-Whitney U p-value from a rank sum, normal approximation with tie and continuity
/// correction (numba_mwu `_mwu_stats_from_rank_sum`, = scipy `mannwhitneyu(method="asymptotic")`).
/// `r1`: rank sum of the target group (average ranks over the combined sample); `tie_term`:
/// sum over tie blocks of `t^3 - t`. Returns `(U1, p)` with `U1` the target group's statistic.
pub fn mwu_from_rank_sum(r1: f64, n1: usize, n2: usize, tie_term: f64) -> (f64, f64) {
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let n = n1f + n2f;
    let u1 = r1 - n1f * (n1f + 1.0) / 2.0;
    let u2 = n1f * n2f - u1;
    let u = u1.max(u2);
    let mu = n1f * n2f / 2.0;
    let denom = n * (n - 1.0);
    let var_inner = (n + 1.0) - tie_term / denom;
    let s_sq = n1f * n2f / 12.0 * var_inner;
    // Also covers n < 2 (denom 0 makes var_inner non-finite): no evidence either way.
    if !(s_sq > 0.0) {
        return (u1, 1.0);
    }
    let s = s_sq.sqrt();
    let z = (u - mu - 0.5) / s;
    let p = ndtr(-z) * 2.0;
    (u1, p.clamp(0.0, 1.0))
}

/// Normal CDF as numba_mwu writes it: `0.5 * erfc(-x / sqrt(2))`.
pub fn ndtr(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

#[cfg(target_os = "linux")]
mod c_math {
    extern "C" {
        // the C library's erfc, which numba's `math.erfc` calls: same bits as pdex
        pub fn erfc(x: f64) -> f64;
    }
}

/// Complementary error function: the C library's on Linux (bit-identical p-values to pdex),
/// the `libm` port elsewhere (within an ulp).
pub fn erfc(x: f64) -> f64 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: a pure function of one double, provided by the always-linked C math library.
        unsafe { c_math::erfc(x) }
    }
    #[cfg(not(target_os = "linux"))]
    {
        libm::erfc(x)
    }
}

/// Benjamini-Hochberg adjusted p-values in input order (scipy `false_discovery_control`, method bh):
/// sort ascending, `p * (m / i)`, running minimum from the largest, clip to [0, 1].
pub fn bh_fdr(ps: &[f64]) -> Vec<f64> {
    let m = ps.len();
    if m <= 1 {
        return ps.to_vec();
    }
    let mut order: Vec<usize> = (0..m).collect();
    // numpy's default argsort is not stable, but equal p-values get equal adjusted values
    // after the running minimum, so the tie order cannot change the result.
    order.sort_by(|&a, &b| ps[a].total_cmp(&ps[b]));
    let mut adj: Vec<f64> = order
        .iter()
        .enumerate()
        .map(|(k, &o)| ps[o] * (m as f64 / (k + 1) as f64))
        .collect();
    for k in (0..m - 1).rev() {
        if adj[k + 1] < adj[k] {
            adj[k] = adj[k + 1];
        }
    }
    let mut out = vec![0.0; m];
    for (k, &o) in order.iter().enumerate() {
        out[o] = adj[k].clamp(0.0, 1.0);
    }
    out
}

/// Average ranks (1-based), ties share the mean rank (scipy `rankdata(method="average")`, polars
/// `rank("average")`). NaN sorts last, as in polars.
pub fn rank_average(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && x[idx[j + 1]].total_cmp(&x[idx[i]]).is_eq() {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[idx[k]] = r;
        }
        i = j + 1;
    }
    ranks
}

/// Pearson correlation; NaN when fewer than 2 values or either side is constant (scipy `pearsonr`
/// and polars `corr` both give NaN there).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len();
    if n < 2 || y.len() != n {
        return f64::NAN;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (dx, dy) = (x[i] - mx, y[i] - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 || !sxx.is_finite() || !syy.is_finite() {
        return f64::NAN;
    }
    (sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0)
}

/// Spearman correlation: Pearson of average ranks (polars `corr(method="spearman")`).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&rank_average(x), &rank_average(y))
}

/// Average precision (sklearn `average_precision_score`, binary): thresholds at the distinct scores
/// in descending order, `AP = sum_k (R_k - R_{k-1}) * P_k`. `labels[i]` true = positive.
pub fn average_precision(labels: &[bool], scores: &[f64]) -> f64 {
    let n = labels.len();
    let n_pos = labels.iter().filter(|&&l| l).count();
    if n_pos == 0 {
        return f64::NAN;
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut ap = 0.0;
    let mut prev_recall = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j < n && scores[idx[j]] == scores[idx[i]] {
            if labels[idx[j]] {
                tp += 1;
            } else {
                fp += 1;
            }
            j += 1;
        }
        let recall = tp as f64 / n_pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        i = j;
    }
    ap
}

/// ROC AUC (sklearn `roc_curve` + trapezoidal `auc`), computed from tie-aware ranks: equal to the
/// trapezoid area, ties counting one half. NaN when one class is absent.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> f64 {
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return f64::NAN;
    }
    let ranks = rank_average(scores);
    let r_pos: f64 = ranks.iter().zip(labels).filter(|(_, &l)| l).map(|(r, _)| r).sum();
    (r_pos - n_pos as f64 * (n_pos as f64 + 1.0) / 2.0) / (n_pos as f64 * n_neg as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bh_matches_scipy_example() {
        // scipy docs example (Benjamini & Hochberg 1995): adjusted values checked against scipy 1.17.
        let ps = [
            0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262, 0.5719, 0.6528,
            0.7590, 1.000,
        ];
        let q = bh_fdr(&ps);
        let expected = [
            0.0015, 0.003, 0.0095, 0.035625, 0.0603, 0.06385714, 0.06385714, 0.0645, 0.0765, 0.486, 0.58118182,
            0.714875, 0.75323077, 0.81321429, 1.0,
        ];
        for (a, b) in q.iter().zip(expected) {
            assert!((a - b).abs() < 1e-7, "{a} vs {b}");
        }
    }

    #[test]
    fn mwu_matches_scipy() {
        // scipy.stats.mannwhitneyu([1,2,3,4,5],[3,4,5,6,7,8], method="asymptotic"): U=4.5, p=0.066015431521231
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let all: Vec<f64> = x.iter().chain(y.iter()).copied().collect();
        let r = rank_average(&all);
        let r1: f64 = r[..5].iter().sum();
        // ties: 3,4,5 each twice -> 3 * (8 - 2)
        let (u, p) = mwu_from_rank_sum(r1, 5, 6, 18.0);
        assert_eq!(u, 4.5);
        assert!((p - 0.066_015_431_521_231).abs() < 1e-12, "{p}");
    }

    #[test]
    fn auc_and_ap() {
        let labels = [true, false, true, false];
        let scores = [0.9, 0.8, 0.7, 0.1];
        assert!((roc_auc(&labels, &scores) - 0.75).abs() < 1e-12);
        // sklearn: AP = 0.5*1 + 0.5*(2/3) = 0.8333
        assert!((average_precision(&labels, &scores) - 0.833_333_333_333_333_4).abs() < 1e-12);
        assert!(roc_auc(&[true, true], &[0.1, 0.2]).is_nan());
    }

    #[test]
    fn spearman_with_ties() {
        // polars: corr([1,1,2],[1,2,3], spearman) = 0.866025
        assert!((spearman(&[1.0, 1.0, 2.0], &[1.0, 2.0, 3.0]) - 0.866_025_403_784_438_6).abs() < 1e-12);
        assert!(spearman(&[1.0], &[1.0]).is_nan());
    }
}
