//! Metric names, profiles and the order cell-eval computes (and writes) them in.

use crate::error::{EvalError, Result};

/// DE metrics in cell-eval's registry order.
pub const DE_METRICS: [&str; 17] = [
    "overlap_at_N",
    "overlap_at_50",
    "overlap_at_100",
    "overlap_at_200",
    "overlap_at_500",
    "precision_at_N",
    "precision_at_50",
    "precision_at_100",
    "precision_at_200",
    "precision_at_500",
    "de_spearman_sig",
    "de_direction_match",
    "de_spearman_lfc_sig",
    "de_sig_genes_recall",
    "de_nsig_counts",
    "pr_auc",
    "roc_auc",
];

/// Expression (AnnData-pair) metrics in cell-eval's registry order.
pub const ANNDATA_METRICS: [&str; 10] = [
    "pearson_delta",
    "mse",
    "mae",
    "mse_delta",
    "mae_delta",
    "discrimination_score_l1",
    "discrimination_score_l2",
    "discrimination_score_cosine",
    "pearson_edistance",
    "clustering_agreement",
];

/// A named set of metrics (`cell-eval run --profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Full,
    Minimal,
    Vcc,
    De,
    Anndata,
    Pds,
}

impl std::str::FromStr for Profile {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "full" => Profile::Full,
            "minimal" => Profile::Minimal,
            "vcc" => Profile::Vcc,
            "de" => Profile::De,
            "anndata" => Profile::Anndata,
            "pds" => Profile::Pds,
            _ => return Err(EvalError::UnknownProfile(s.to_string())),
        })
    }
}

impl Profile {
    /// The profile's metric list as cell-eval's pipeline holds it.
    pub fn metrics(self) -> Vec<&'static str> {
        match self {
            Profile::Full => DE_METRICS.iter().chain(ANNDATA_METRICS.iter()).copied().collect(),
            Profile::De => DE_METRICS.to_vec(),
            Profile::Anndata => ANNDATA_METRICS.to_vec(),
            Profile::Minimal => vec![
                "pearson_delta",
                "mse",
                "mae",
                "discrimination_score_l1",
                "overlap_at_N",
                "precision_at_N",
                "de_nsig_counts",
            ],
            Profile::Vcc => vec!["mae", "discrimination_score_l1", "overlap_at_N"],
            Profile::Pds => vec!["discrimination_score_l1"],
        }
    }

    /// cell-eval skips DE entirely only for `pds`.
    pub fn needs_de(self) -> bool {
        self != Profile::Pds
    }
}

/// Metrics to compute, in output order: the profile's DE metrics first, then its expression
/// metrics (cell-eval's `compute_de_metrics` then `compute_anndata_metrics`), minus `skip`.
pub fn plan(profile: Profile, skip: &[String]) -> Vec<&'static str> {
    for s in skip {
        if !DE_METRICS.contains(&s.as_str()) && !ANNDATA_METRICS.contains(&s.as_str()) {
            tracing::warn!("--skip-metrics: `{s}` is not a metric name (ignored, as cell-eval does)");
        }
    }
    let m = profile.metrics();
    let keep = |n: &str| !skip.iter().any(|s| s == n);
    let de = m.iter().filter(|n| DE_METRICS.contains(n) && keep(n));
    let ad = m.iter().filter(|n| ANNDATA_METRICS.contains(n) && keep(n));
    de.chain(ad).copied().collect()
}

/// How `cell-eval score` normalises a metric against the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BestValue {
    Zero,
    One,
    None,
}

/// Best value of a metric column name as cell-eval's registry has it; `None` for names not in
/// the registry (e.g. `de_nsig_counts_real`, which score skips).
pub fn best_value(name: &str) -> Option<BestValue> {
    match name {
        "mse" | "mae" | "mse_delta" | "mae_delta" => Some(BestValue::Zero),
        "de_nsig_counts" => Some(BestValue::None),
        n if DE_METRICS.contains(&n) || ANNDATA_METRICS.contains(&n) => Some(BestValue::One),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_puts_de_first() {
        assert_eq!(
            plan(Profile::Minimal, &[]),
            vec![
                "overlap_at_N",
                "precision_at_N",
                "de_nsig_counts",
                "pearson_delta",
                "mse",
                "mae",
                "discrimination_score_l1"
            ]
        );
        assert_eq!(plan(Profile::Full, &["mse".into()]).len(), 26);
    }
}
