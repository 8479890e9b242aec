//! Training means from a store's training groups, and baseline predictions for a template of cells
//! (e.g. the `real.h5ad` that `scale predict --split test` writes): same cells, same obs, predicted values.

use std::collections::BTreeMap;

use scale_io::{AnnData, Column, DenseMatrix, Matrix};
use scale_store::Store;

use crate::{BaselineError, Fitted, GroupMean, TrainingMeans};

/// Pseudobulk means of `groups` of the store, merged per (perturbation, context, dose) (cell-weighted).
pub fn training_means(store: &Store, groups: &[usize], combo_sep: &str) -> Result<TrainingMeans, BaselineError> {
    let m = store.manifest();
    let g = store.n_features();
    let mut acc: BTreeMap<(u32, u32, u32), (Vec<f64>, usize)> = BTreeMap::new();
    let mut row = vec![0f32; g];
    for &gi in groups {
        let info = store.group(gi).map_err(|e| BaselineError::Store(e.to_string()))?;
        let rows = store.group_rows(gi).map_err(|e| BaselineError::Store(e.to_string()))?;
        let e = acc
            .entry((info.pert, info.context, info.dose.to_bits()))
            .or_insert_with(|| (vec![0.0; g], 0));
        for r in rows {
            store.read_row_into(r, &mut row);
            for (a, &v) in e.0.iter_mut().zip(&row) {
                *a += v as f64;
            }
            e.1 += 1;
        }
    }
    let groups = acc
        .into_iter()
        .filter(|(_, (_, n))| *n > 0)
        .map(|((p, c, d), (sum, n))| GroupMean {
            pert: m.perts[p as usize].clone(),
            context: m.contexts[c as usize].clone(),
            dose: f32::from_bits(d),
            n_cells: n,
            mean: sum.iter().map(|s| (s / n as f64) as f32).collect(),
        })
        .collect();
    Ok(TrainingMeans {
        n_genes: g,
        control_label: m.control_label.clone(),
        combo_sep: combo_sep.into(),
        groups,
    })
}

/// Counts of what a prediction had to fall back on.
#[derive(Debug, Default, Clone)]
pub struct PredictReport {
    pub conditions: usize,
    pub fallbacks: Vec<(String, String)>,
}

/// Predicts every non-control cell of `template` (grouped by its `pert_col` × `context_col` labels, and
/// by `dose_col` when given) from the template's control cells of the same context; control cells are
/// copied unchanged (as cell-eval's baseline does). Returns a dense AnnData with the template's obs and var.
pub fn predict_template(
    fitted: &Fitted,
    template: &AnnData,
    pert_col: &str,
    context_col: Option<&str>,
    dose_col: Option<&str>,
    control_label: &str,
    seed: u64,
) -> Result<(AnnData, PredictReport), BaselineError> {
    let col = |name: &str| -> Result<Vec<String>, BaselineError> {
        template
            .obs
            .column(name)
            .map(Column::to_strings)
            .ok_or_else(|| BaselineError::Template(format!("obs has no column `{name}`")))
    };
    let perts = col(pert_col)?;
    let contexts = match context_col {
        Some(c) if template.obs.column(c).is_some() => col(c)?,
        // Single-context data: every cell is in the one context the store knows.
        _ => vec![String::new(); perts.len()],
    };
    let doses: Vec<f32> = match dose_col {
        Some(name) => match template.obs.column(name) {
            Some(Column::Float(v)) => v.iter().map(|&d| d as f32).collect(),
            Some(Column::Int(v)) => v.iter().map(|&d| d as f32).collect(),
            Some(_) => return Err(BaselineError::Template(format!("obs `{name}` is not numeric"))),
            None => return Err(BaselineError::Template(format!("obs has no dose column `{name}`"))),
        },
        None => vec![0.0; perts.len()],
    };
    let x = template.x.to_dense();
    let mut out = x.clone();
    let mut by_cond: BTreeMap<(&str, &str, u32), Vec<usize>> = BTreeMap::new();
    let mut controls: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (p, c)) in perts.iter().zip(&contexts).enumerate() {
        if p == control_label {
            controls.entry(c).or_default().push(i);
        } else {
            by_cond.entry((p, c, doses[i].to_bits())).or_default().push(i);
        }
    }
    let mut report = PredictReport::default();
    for (k, ((p, c, d), rows)) in by_cond.iter().enumerate() {
        let ctrl_rows = controls
            .get(c)
            .ok_or_else(|| BaselineError::NoControlCells(c.to_string()))?;
        let ctrl: DenseMatrix = x.select_rows(ctrl_rows);
        let context = if c.is_empty() {
            fitted.single_context().unwrap_or_default()
        } else {
            c.to_string()
        };
        let dose = f32::from_bits(*d);
        let (cells, fallback) =
            fitted.predict_cells_at(p, &context, dose, &ctrl, rows.len(), seed.wrapping_add(k as u64))?;
        for (j, &r) in rows.iter().enumerate() {
            out.row_mut(r).copy_from_slice(cells.row(j));
        }
        report.conditions += 1;
        if fallback {
            report.fallbacks.push((p.to_string(), context));
        }
    }
    let mut pred = AnnData::new(Matrix::Dense(out), template.obs.clone(), template.var.clone());
    pred.uns.push(("scale_baseline".into(), fitted.kind().name().into()));
    Ok((pred, report))
}
