//! Training losses: endpoint MSE and the per-set energy distance.

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Loss weights (the `[loss]` table of a preset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// Weight of the mean squared error between predicted and real endpoints.
    #[serde(default)]
    pub w_mse: f64,
    /// Weight of the per-set energy distance between predicted and real perturbed sets.
    #[serde(default = "one")]
    pub w_energy: f64,
    /// Added inside the square root of pairwise distances so the gradient at coincident cells is finite.
    #[serde(default = "default_eps")]
    pub eps: f64,
}

fn one() -> f64 {
    1.0
}
fn default_eps() -> f64 {
    1e-6
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            w_mse: 0.0,
            w_energy: 1.0,
            eps: default_eps(),
        }
    }
}

/// The loss terms of one batch; `total` carries the graph.
pub struct LossParts {
    /// w_mse * mse + w_energy * energy, scalar [1].
    pub total: Tensor<1>,
    /// Mean squared error, [1].
    pub mse: Tensor<1>,
    /// Mean over sets of the energy distance, [1].
    pub energy: Tensor<1>,
}

impl LossConfig {
    /// Loss between predicted endpoints `pred` [B, S, G] and real perturbed sets `target` [B, S, G].
    pub fn compute(&self, pred: Tensor<3>, target: Tensor<3>) -> LossParts {
        let diff = pred.clone() - target.clone();
        let mse = (diff.clone() * diff).mean();
        let energy = energy_distance(pred, target, self.eps).mean();
        let total = mse.clone().mul_scalar(self.w_mse) + energy.clone().mul_scalar(self.w_energy);
        LossParts { total, mse, energy }
    }
}

/// Energy distance per set, E|x-y| - 1/2 E|x-x'| - 1/2 E|y-y'| with Euclidean distances over the
/// last axis and uniform weights (the V-statistic, diagonal included, as geomloss
/// `SamplesLoss("energy")` computes it). x: [B, N, G], y: [B, M, G] -> [B].
pub fn energy_distance(x: Tensor<3>, y: Tensor<3>, eps: f64) -> Tensor<1> {
    let xy = mean_pairwise_distance(x.clone(), y.clone(), eps, false);
    let xx = mean_pairwise_distance(x.clone(), x, eps, true);
    let yy = mean_pairwise_distance(y.clone(), y, eps, true);
    xy - (xx + yy).mul_scalar(0.5)
}

/// Mean Euclidean distance between the rows of a [B, N, G] and b [B, M, G] -> [B].
///
/// Squared distances come from |a|^2 + |b|^2 - 2 a.b (one matmul instead of a [B, N, M, G]
/// difference tensor). For a self-distance the diagonal is zeroed exactly, so its (analytically
/// zero) gradient is not amplified by 1/sqrt(eps).
fn mean_pairwise_distance(a: Tensor<3>, b: Tensor<3>, eps: f64, self_pairs: bool) -> Tensor<1> {
    let [nb, n, _] = a.dims();
    let m = b.dims()[1];
    let aa = (a.clone() * a.clone()).sum_dim(2); // [B, N, 1]
    let bb = (b.clone() * b.clone()).sum_dim(2).swap_dims(1, 2); // [B, 1, M]
    let ab = a.matmul(b.swap_dims(1, 2)); // [B, N, M]
    let d2 = (aa + bb - ab.mul_scalar(2.0)).clamp_min(0.0);
    let d = if self_pairs {
        let mask = off_diagonal(n, &d2.device()).reshape([1, n, n]);
        // Zeroed before the sqrt (no gradient through the diagonal) and after it (sqrt(eps) there
        // is not a distance).
        (d2 * mask.clone()).add_scalar(eps).sqrt() * mask
    } else {
        d2.add_scalar(eps).sqrt()
    };
    d.sum_dim(2).sum_dim(1).reshape([nb]).div_scalar((n * m) as f64)
}

/// [N, N] matrix with 0 on the diagonal and 1 elsewhere.
fn off_diagonal(n: usize, device: &Device) -> Tensor<2> {
    let mut v = vec![1.0f32; n * n];
    for i in 0..n {
        v[i * n + i] = 0.0;
    }
    Tensor::from_data(TensorData::new(v, [n, n]), device)
}
