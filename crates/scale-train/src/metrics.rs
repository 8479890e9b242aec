//! Validation metric computed in the trainer: Pearson correlation of pseudobulk deltas.

use std::collections::BTreeMap;

use scale_store::SetBatch;

/// Accumulates, per (perturbation, context), the gene-wise sums of control, real and predicted
/// cells, to compare pseudobulk deltas (mean predicted - mean control vs mean real - mean control)
/// as cell-eval's `pearson_delta` does per perturbation.
#[derive(Default)]
pub struct DeltaAccumulator {
    /// key -> (control sum [G], real sum [G], predicted sum [G], cells)
    groups: BTreeMap<(u32, u32), (Vec<f64>, Vec<f64>, Vec<f64>, usize)>,
}

impl DeltaAccumulator {
    /// Adds a batch and its predictions `pred` [B, S, G] (row-major, as the batch).
    pub fn add_batch(&mut self, batch: &SetBatch, pred: &[f32]) {
        let (s, g) = (batch.set_size, batch.n_features);
        for b in 0..batch.n_sets {
            let e = self
                .groups
                .entry((batch.pert[b], batch.context[b]))
                .or_insert_with(|| (vec![0.0; g], vec![0.0; g], vec![0.0; g], 0));
            for c in 0..s {
                let off = (b * s + c) * g;
                for j in 0..g {
                    e.0[j] += f64::from(batch.control[off + j]);
                    e.1[j] += f64::from(batch.target[off + j]);
                    e.2[j] += f64::from(pred[off + j]);
                }
            }
            e.3 += s;
        }
    }

    /// Mean over groups of Pearson(pred delta, real delta); NaN if no group has a defined value.
    pub fn mean_pearson_delta(&self) -> f64 {
        let vals: Vec<f64> = self
            .groups
            .values()
            .filter_map(|(ctrl, real, pred, n)| {
                let n = *n as f64;
                let dr: Vec<f64> = real.iter().zip(ctrl).map(|(r, c)| (r - c) / n).collect();
                let dp: Vec<f64> = pred.iter().zip(ctrl).map(|(p, c)| (p - c) / n).collect();
                pearson(&dp, &dr)
            })
            .collect();
        if vals.is_empty() {
            f64::NAN
        } else {
            vals.iter().sum::<f64>() / vals.len() as f64
        }
    }
}

/// Pearson correlation; `None` when either side is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    if a.is_empty() {
        return None;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa <= 0.0 || sbb <= 0.0 {
        None
    } else {
        Some(sab / (saa * sbb).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pearson_delta_is_one_for_perfect_and_negative_for_flipped() {
        let mut batch = SetBatch::zeros(1, 2, 3);
        batch.control = vec![1., 1., 1., 1., 1., 1.];
        batch.target = vec![2., 1., 0., 2., 1., 0.];
        let mut acc = DeltaAccumulator::default();
        acc.add_batch(&batch, &batch.target.clone());
        assert!((acc.mean_pearson_delta() - 1.0).abs() < 1e-12);
        let mut acc = DeltaAccumulator::default();
        acc.add_batch(&batch, &[0., 1., 2., 0., 1., 2.]);
        assert!((acc.mean_pearson_delta() + 1.0).abs() < 1e-12);
        assert_eq!(pearson(&[1., 1.], &[1., 2.]), None);
    }
}
