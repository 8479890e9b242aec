//! Fitting baselines on pseudobulk means and predicting cells from controls.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};
use scale_io::DenseMatrix;

use crate::ridge::ridge;

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("baseline training data has no control group (label `{control}`) in context `{context}`")]
    NoControls { control: String, context: String },
    #[error("group ({pert}, {context}) has {found} genes; expected {expected}")]
    GeneCount {
        pert: String,
        context: String,
        found: usize,
        expected: usize,
    },
    #[error("no training groups")]
    Empty,
    #[error("perturbation `{0}` has no row in the feature table")]
    NoFeatures(String),
    #[error("ridge system is singular (lambda = {0}); use a positive --lambda")]
    Singular(f64),
    #[error("no control cells given for context `{0}`")]
    NoControlCells(String),
    #[error("unknown baseline kind `{0}`; expected cell-mean, context-mean, additive or linear")]
    UnknownKind(String),
    #[error("store: {0}")]
    Store(String),
    #[error("template: {0}")]
    Template(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaselineKind {
    /// cell-eval's baseline: every perturbed cell is the mean over training perturbations of their mean.
    CellMean,
    ContextMean,
    Additive,
    Linear,
    /// Drug screens: the perturbation's delta in the same context interpolated in log dose between the
    /// nearest trained doses below and above (the nearest one beyond the ends); other contexts' when the
    /// context never saw the perturbation.
    DoseInterp,
}

impl std::str::FromStr for BaselineKind {
    type Err = BaselineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cell-mean" => Ok(Self::CellMean),
            "context-mean" => Ok(Self::ContextMean),
            "additive" => Ok(Self::Additive),
            "linear" => Ok(Self::Linear),
            "dose-interp" => Ok(Self::DoseInterp),
            other => Err(BaselineError::UnknownKind(other.into())),
        }
    }
}

impl BaselineKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::CellMean => "cell-mean",
            Self::ContextMean => "context-mean",
            Self::Additive => "additive",
            Self::Linear => "linear",
            Self::DoseInterp => "dose-interp",
        }
    }
}

/// Mean expression of one training group.
#[derive(Debug, Clone)]
pub struct GroupMean {
    pub pert: String,
    pub context: String,
    /// Dose of the group (0 without doses).
    pub dose: f32,
    pub n_cells: usize,
    /// [G], in the data's expression space.
    pub mean: Vec<f32>,
}

/// Pseudobulk means of every training group, controls included.
#[derive(Debug, Clone)]
pub struct TrainingMeans {
    pub n_genes: usize,
    pub control_label: String,
    /// Separator of combination labels (`A+B`).
    pub combo_sep: String,
    pub groups: Vec<GroupMean>,
}

/// A user's perturbation feature table (gene or drug features), name → vector.
#[derive(Debug, Clone, Default)]
pub struct PertFeatures {
    pub dim: usize,
    pub rows: BTreeMap<String, Vec<f32>>,
}

/// A fitted baseline: predicts the mean shift of (perturbation, context) relative to the context's controls.
#[derive(Debug, Clone)]
pub struct Fitted {
    kind: BaselineKind,
    n_genes: usize,
    combo_sep: String,
    /// Per-context mean shift of all perturbed cells (context-mean), and its average for unseen contexts.
    context_shift: BTreeMap<String, Vec<f64>>,
    global_shift: Vec<f64>,
    /// Cell-mean: the mean over perturbed training groups of their mean expression (absolute values).
    cell_mean: Vec<f64>,
    /// Additive: per perturbation, its delta averaged over the contexts where it was seen.
    pert_delta: BTreeMap<String, Vec<f64>>,
    /// Linear: design columns and weights [P, G].
    linear: Option<Linear>,
    /// Dose-interp: per (perturbation, context), its deltas by increasing dose.
    dose_delta: BTreeMap<(String, String), DoseSeries>,
}

/// (dose, delta [G]) of one perturbation in one context, by increasing dose.
type DoseSeries = Vec<(f32, Vec<f64>)>;

#[derive(Debug, Clone)]
struct Linear {
    pert_cols: BTreeMap<String, usize>,
    features: Option<PertFeatures>,
    n_pert_cols: usize,
    contexts: BTreeMap<String, usize>,
    weights: Vec<f64>,
    n_cols: usize,
}

fn sub(a: &[f32], b: &[f32]) -> Vec<f64> {
    a.iter().zip(b).map(|(&x, &y)| x as f64 - y as f64).collect()
}

fn add_into(acc: &mut [f64], v: &[f64], w: f64) {
    for (a, &x) in acc.iter_mut().zip(v) {
        *a += w * x;
    }
}

impl Fitted {
    pub fn kind(&self) -> BaselineKind {
        self.kind
    }

    /// The training context when there is exactly one (single-context data sets).
    pub fn single_context(&self) -> Option<String> {
        (self.context_shift.len() == 1)
            .then(|| self.context_shift.keys().next().cloned())
            .flatten()
    }

    /// Fits `kind` on the training means. `lambda` is the ridge penalty of the linear baseline.
    pub fn fit(
        kind: BaselineKind,
        train: &TrainingMeans,
        features: Option<&PertFeatures>,
        lambda: f64,
    ) -> Result<Fitted, BaselineError> {
        let g = train.n_genes;
        for grp in &train.groups {
            if grp.mean.len() != g {
                return Err(BaselineError::GeneCount {
                    pert: grp.pert.clone(),
                    context: grp.context.clone(),
                    found: grp.mean.len(),
                    expected: g,
                });
            }
        }
        let mut control: BTreeMap<&str, &GroupMean> = BTreeMap::new();
        for grp in train.groups.iter().filter(|x| x.pert == train.control_label) {
            control.insert(&grp.context, grp);
        }
        // (pert, context, delta vs the context's controls, cells)
        let mut deltas: Vec<(&str, &str, Vec<f64>, usize)> = Vec::new();
        let mut dose_delta: BTreeMap<(String, String), DoseSeries> = BTreeMap::new();
        for grp in train.groups.iter().filter(|x| x.pert != train.control_label) {
            let ctrl = control
                .get(grp.context.as_str())
                .ok_or_else(|| BaselineError::NoControls {
                    control: train.control_label.clone(),
                    context: grp.context.clone(),
                })?;
            deltas.push((&grp.pert, &grp.context, sub(&grp.mean, &ctrl.mean), grp.n_cells));
            dose_delta
                .entry((grp.pert.clone(), grp.context.clone()))
                .or_default()
                .push((grp.dose, sub(&grp.mean, &ctrl.mean)));
        }
        for v in dose_delta.values_mut() {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        if deltas.is_empty() {
            return Err(BaselineError::Empty);
        }
        // Context-mean: cell-weighted mean delta per context.
        let mut context_shift: BTreeMap<String, (Vec<f64>, f64)> = BTreeMap::new();
        for (_, ctx, d, n) in &deltas {
            let e = context_shift
                .entry(ctx.to_string())
                .or_insert_with(|| (vec![0.0; g], 0.0));
            add_into(&mut e.0, d, *n as f64);
            e.1 += *n as f64;
        }
        let context_shift: BTreeMap<String, Vec<f64>> = context_shift
            .into_iter()
            .map(|(k, (v, w))| (k, v.iter().map(|x| x / w).collect()))
            .collect();
        let mut global_shift = vec![0.0; g];
        for v in context_shift.values() {
            add_into(&mut global_shift, v, 1.0 / context_shift.len() as f64);
        }
        let perturbed: Vec<&GroupMean> = train.groups.iter().filter(|x| x.pert != train.control_label).collect();
        let mut cell_mean = vec![0.0; g];
        for grp in &perturbed {
            let m: Vec<f64> = grp.mean.iter().map(|&v| v as f64).collect();
            add_into(&mut cell_mean, &m, 1.0 / perturbed.len() as f64);
        }
        // Additive: per perturbation, mean delta over its contexts.
        let mut pert_acc: BTreeMap<String, (Vec<f64>, f64)> = BTreeMap::new();
        for (p, _, d, _) in &deltas {
            let e = pert_acc.entry(p.to_string()).or_insert_with(|| (vec![0.0; g], 0.0));
            add_into(&mut e.0, d, 1.0);
            e.1 += 1.0;
        }
        let pert_delta = pert_acc
            .into_iter()
            .map(|(k, (v, w))| (k, v.iter().map(|x| x / w).collect()))
            .collect();
        let linear = if kind == BaselineKind::Linear {
            Some(fit_linear(train, features, &deltas, lambda)?)
        } else {
            None
        };
        Ok(Fitted {
            kind,
            n_genes: g,
            combo_sep: train.combo_sep.clone(),
            context_shift,
            global_shift,
            cell_mean,
            pert_delta,
            linear,
            dose_delta,
        })
    }

    fn components<'a>(&self, pert: &'a str) -> Vec<&'a str> {
        if self.combo_sep.is_empty() {
            vec![pert]
        } else {
            pert.split(self.combo_sep.as_str()).collect()
        }
    }

    /// Predicted mean shift [G] of `pert` in `context` relative to that context's controls, and whether a
    /// fallback was needed (perturbation or context unseen in training).
    pub fn predict_delta(&self, pert: &str, context: &str) -> Result<(Vec<f64>, bool), BaselineError> {
        self.predict_delta_at(pert, context, 0.0)
    }

    /// [`Fitted::predict_delta`] at a dose (only `dose-interp` uses it).
    pub fn predict_delta_at(&self, pert: &str, context: &str, dose: f32) -> Result<(Vec<f64>, bool), BaselineError> {
        match self.kind {
            BaselineKind::DoseInterp => {
                if let Some(series) = self.dose_delta.get(&(pert.to_string(), context.to_string())) {
                    return Ok((interpolate_dose(series, dose), false));
                }
                // Not seen in this context: the mean over the contexts that saw it, else the average shift.
                let others: Vec<Vec<f64>> = self
                    .dose_delta
                    .iter()
                    .filter(|((p, _), _)| p == pert)
                    .map(|(_, series)| interpolate_dose(series, dose))
                    .collect();
                if others.is_empty() {
                    return Ok((self.global_shift.clone(), true));
                }
                let mut out = vec![0.0; self.n_genes];
                for d in &others {
                    add_into(&mut out, d, 1.0 / others.len() as f64);
                }
                Ok((out, true))
            }
            // Not a shift model: predict_cells returns the absolute mean; as a shift it is relative to zero.
            BaselineKind::CellMean => Ok((self.cell_mean.clone(), false)),
            BaselineKind::ContextMean => Ok(match self.context_shift.get(context) {
                Some(v) => (v.clone(), false),
                None => (self.global_shift.clone(), true),
            }),
            BaselineKind::Additive => {
                if let Some(d) = self.pert_delta.get(pert) {
                    return Ok((d.clone(), false));
                }
                // Unseen combination: add its seen components; anything unseen falls back to the average shift.
                let mut out = vec![0.0; self.n_genes];
                let mut fallback = false;
                for c in self.components(pert) {
                    match self.pert_delta.get(c) {
                        Some(d) => add_into(&mut out, d, 1.0),
                        None => {
                            add_into(&mut out, &self.global_shift, 1.0);
                            fallback = true;
                        }
                    }
                }
                Ok((out, fallback))
            }
            BaselineKind::Linear => {
                let lin = self.linear.as_ref().expect("linear baseline fitted with weights");
                let (x, fallback) = lin.design_row(pert, context, &self.combo_sep)?;
                let mut out = vec![0.0; self.n_genes];
                for (i, &v) in x.iter().enumerate() {
                    if v != 0.0 {
                        add_into(&mut out, &lin.weights[i * self.n_genes..(i + 1) * self.n_genes], v);
                    }
                }
                Ok((out, fallback))
            }
        }
    }

    /// `n_cells` predicted cells: control cells of the context drawn with replacement (seeded), shifted by
    /// the predicted delta and clipped at 0 (log1p space is non-negative).
    pub fn predict_cells(
        &self,
        pert: &str,
        context: &str,
        controls: &DenseMatrix,
        n_cells: usize,
        seed: u64,
    ) -> Result<(DenseMatrix, bool), BaselineError> {
        self.predict_cells_at(pert, context, 0.0, controls, n_cells, seed)
    }

    /// [`Fitted::predict_cells`] at a dose.
    pub fn predict_cells_at(
        &self,
        pert: &str,
        context: &str,
        dose: f32,
        controls: &DenseMatrix,
        n_cells: usize,
        seed: u64,
    ) -> Result<(DenseMatrix, bool), BaselineError> {
        if controls.n_rows == 0 {
            return Err(BaselineError::NoControlCells(context.into()));
        }
        let (delta, fallback) = self.predict_delta_at(pert, context, dose)?;
        if self.kind == BaselineKind::CellMean {
            let row: Vec<f32> = delta.iter().map(|&v| v as f32).collect();
            let data = (0..n_cells).flat_map(|_| row.iter().copied()).collect();
            return Ok((
                DenseMatrix {
                    n_rows: n_cells,
                    n_cols: self.n_genes,
                    data,
                },
                false,
            ));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut out = DenseMatrix::zeros(n_cells, self.n_genes);
        for r in 0..n_cells {
            let src = controls.row(rng.gen_range(0..controls.n_rows));
            for ((o, &c), &d) in out.row_mut(r).iter_mut().zip(src).zip(&delta) {
                *o = (c as f64 + d).max(0.0) as f32;
            }
        }
        Ok((out, fallback))
    }
}

/// The delta at `dose` from a series sorted by dose: linear in log10(dose) between the nearest doses
/// below and above (linear in dose when one of them is 0), the nearest dose's delta beyond the ends.
fn interpolate_dose(series: &[(f32, Vec<f64>)], dose: f32) -> Vec<f64> {
    let above = series.partition_point(|(d, _)| *d < dose);
    if above < series.len() && series[above].0 == dose {
        return series[above].1.clone();
    }
    if above == 0 {
        return series[0].1.clone();
    }
    if above == series.len() {
        return series[above - 1].1.clone();
    }
    let ((d0, lo), (d1, hi)) = (&series[above - 1], &series[above]);
    let (x, x0, x1) = if *d0 > 0.0 {
        ((dose as f64).log10(), (*d0 as f64).log10(), (*d1 as f64).log10())
    } else {
        (dose as f64, *d0 as f64, *d1 as f64)
    };
    let w = (x - x0) / (x1 - x0);
    lo.iter().zip(hi).map(|(&a, &b)| (1.0 - w) * a + w * b).collect()
}

impl Linear {
    /// [perturbation columns ; context one-hot ; intercept].
    fn design_row(&self, pert: &str, context: &str, sep: &str) -> Result<(Vec<f64>, bool), BaselineError> {
        let mut x = vec![0.0; self.n_cols];
        let mut fallback = false;
        let parts: Vec<&str> = if sep.is_empty() {
            vec![pert]
        } else {
            pert.split(sep).collect()
        };
        for p in parts {
            match &self.features {
                Some(f) => {
                    let row = f.rows.get(p).ok_or_else(|| BaselineError::NoFeatures(p.into()))?;
                    for (i, &v) in row.iter().enumerate() {
                        x[i] += v as f64;
                    }
                }
                None => match self.pert_cols.get(p) {
                    Some(&i) => x[i] += 1.0,
                    None => fallback = true,
                },
            }
        }
        match self.contexts.get(context) {
            Some(&i) => x[self.n_pert_cols + i] = 1.0,
            None => fallback = true,
        }
        x[self.n_cols - 1] = 1.0;
        Ok((x, fallback))
    }
}

fn fit_linear(
    train: &TrainingMeans,
    features: Option<&PertFeatures>,
    deltas: &[(&str, &str, Vec<f64>, usize)],
    lambda: f64,
) -> Result<Linear, BaselineError> {
    let sep = train.combo_sep.as_str();
    let split = |p: &str| -> Vec<String> {
        if sep.is_empty() {
            vec![p.to_string()]
        } else {
            p.split(sep).map(str::to_string).collect()
        }
    };
    let mut names = BTreeSet::new();
    for (p, ..) in deltas {
        names.extend(split(p));
    }
    let pert_cols: BTreeMap<String, usize> = names.into_iter().enumerate().map(|(i, n)| (n, i)).collect();
    let n_pert_cols = features.map_or(pert_cols.len(), |f| f.dim);
    let contexts: BTreeMap<String, usize> = deltas
        .iter()
        .map(|d| d.1.to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c, i))
        .collect();
    let n_cols = n_pert_cols + contexts.len() + 1;
    let mut lin = Linear {
        pert_cols,
        features: features.cloned(),
        n_pert_cols,
        contexts,
        weights: Vec::new(),
        n_cols,
    };
    let g = train.n_genes;
    let mut a = Vec::with_capacity(deltas.len() * n_cols);
    let mut y = Vec::with_capacity(deltas.len() * g);
    for (p, c, d, _) in deltas {
        a.extend(lin.design_row(p, c, sep)?.0);
        y.extend_from_slice(d);
    }
    lin.weights = ridge(&a, deltas.len(), n_cols, &y, g, lambda).ok_or(BaselineError::Singular(lambda))?;
    Ok(lin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(pert: &str, ctx: &str, mean: &[f32]) -> GroupMean {
        GroupMean {
            dose: 0.0,
            pert: pert.into(),
            context: ctx.into(),
            n_cells: 10,
            mean: mean.to_vec(),
        }
    }

    fn train() -> TrainingMeans {
        TrainingMeans {
            n_genes: 2,
            control_label: "ctrl".into(),
            combo_sep: "+".into(),
            groups: vec![
                g("ctrl", "K562", &[1.0, 1.0]),
                g("A", "K562", &[2.0, 1.0]),
                g("B", "K562", &[1.0, 0.5]),
                g("ctrl", "A172", &[3.0, 3.0]),
                g("A", "A172", &[4.0, 3.0]),
            ],
        }
    }

    #[test]
    fn additive_adds_combination_components() {
        let f = Fitted::fit(BaselineKind::Additive, &train(), None, 1.0).unwrap();
        let (d, fallback) = f.predict_delta("A+B", "U87").unwrap();
        assert_eq!(d, vec![1.0, -0.5]);
        assert!(!fallback);
        let (_, fallback) = f.predict_delta("Z", "K562").unwrap();
        assert!(fallback);
    }

    #[test]
    fn context_mean_uses_the_contexts_perturbed_cells() {
        let f = Fitted::fit(BaselineKind::ContextMean, &train(), None, 1.0).unwrap();
        assert_eq!(f.predict_delta("B", "K562").unwrap().0, vec![0.5, -0.25]);
        assert_eq!(f.predict_delta("B", "A172").unwrap().0, vec![1.0, 0.0]);
    }

    #[test]
    fn linear_with_small_lambda_fits_training_deltas() {
        let f = Fitted::fit(BaselineKind::Linear, &train(), None, 1e-6).unwrap();
        let (d, _) = f.predict_delta("A", "A172").unwrap();
        assert!((d[0] - 1.0).abs() < 1e-3 && d[1].abs() < 1e-3, "{d:?}");
    }

    #[test]
    fn predicted_cells_are_shifted_controls_clipped_at_zero() {
        let f = Fitted::fit(BaselineKind::Additive, &train(), None, 1.0).unwrap();
        let controls = DenseMatrix {
            n_rows: 1,
            n_cols: 2,
            data: vec![0.2, 0.2],
        };
        let (cells, _) = f.predict_cells("B", "K562", &controls, 3, 7).unwrap();
        assert_eq!(cells.data, vec![0.2, 0.0, 0.2, 0.0, 0.2, 0.0]);
    }

    #[test]
    fn cell_mean_is_the_mean_of_perturbation_means() {
        let f = Fitted::fit(BaselineKind::CellMean, &train(), None, 1.0).unwrap();
        let controls = DenseMatrix {
            n_rows: 1,
            n_cols: 2,
            data: vec![9.0, 9.0],
        };
        let (cells, _) = f.predict_cells("anything", "K562", &controls, 2, 0).unwrap();
        let expected = [7.0 / 3.0, 1.5, 7.0 / 3.0, 1.5];
        assert!(
            cells.data.iter().zip(expected).all(|(&a, b)| (a - b).abs() < 1e-6),
            "{:?}",
            cells.data
        );
    }

    #[test]
    fn missing_controls_are_a_named_error() {
        let mut t = train();
        t.groups.retain(|x| !(x.pert == "ctrl" && x.context == "A172"));
        let err = Fitted::fit(BaselineKind::Additive, &t, None, 1.0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("A172"), "{err}");
    }

    /// Drug D at 0.1 and 10 in K562 (and 1 in A172): dose 1 in K562 sits halfway in log dose; doses
    /// beyond the ends take the nearest trained dose; a context that never saw D averages the others.
    #[test]
    fn dose_interp_interpolates_in_log_dose() {
        let mut t = train();
        let dosed = |ctx: &str, dose: f32, mean: &[f32]| GroupMean {
            dose,
            ..g("D", ctx, mean)
        };
        t.groups.push(dosed("K562", 0.1, &[1.5, 1.0])); // delta [0.5, 0]
        t.groups.push(dosed("K562", 10.0, &[3.5, 0.0])); // delta [2.5, -1]
        t.groups.push(dosed("A172", 1.0, &[4.0, 2.0])); // delta [1, -1]
        let f = Fitted::fit(BaselineKind::DoseInterp, &t, None, 1.0).unwrap();
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        let (d, fallback) = f.predict_delta_at("D", "K562", 1.0).unwrap();
        assert!(close(&d, &[1.5, -0.5]) && !fallback, "{d:?}");
        let (d, _) = f.predict_delta_at("D", "K562", 10f32.powf(-0.5)).unwrap();
        // 10^-0.5: a quarter of the way from 10^-1 to 10^1
        assert!(close(&d, &[1.0, -0.25]), "{d:?}");
        assert_eq!(f.predict_delta_at("D", "K562", 0.01).unwrap().0, vec![0.5, 0.0]);
        assert_eq!(f.predict_delta_at("D", "K562", 100.0).unwrap().0, vec![2.5, -1.0]);
        assert_eq!(f.predict_delta_at("D", "K562", 10.0).unwrap().0, vec![2.5, -1.0]);
        // unseen context: the mean over K562 (interpolated at 1) and A172 (its only dose)
        let (d, fallback) = f.predict_delta_at("D", "U87", 1.0).unwrap();
        assert!(close(&d, &[1.25, -0.75]) && fallback, "{d:?}");
        // a perturbation without doses is its own delta; an unseen one falls back to the average shift
        assert_eq!(f.predict_delta_at("A", "K562", 0.0).unwrap().0, vec![1.0, 0.0]);
        assert!(f.predict_delta_at("Z", "K562", 1.0).unwrap().1);
    }
}
