//! Inference: transport control sets to predicted perturbed sets with K Euler steps.

use burn::tensor::{Int, Tensor};

use crate::transport::{TransportInput, TransportModel};
use crate::ModelError;

/// Per-set conditions (everything but the cells).
#[derive(Debug, Clone)]
pub struct Conditions {
    /// Perturbation input vectors, [B, P].
    pub pert: Tensor<2>,
    /// Context indices, [B].
    pub context: Tensor<1, Int>,
    /// Batch indices, [B] (models trained with a batch embedding).
    pub batch: Option<Tensor<1, Int>>,
    /// Doses, [B] (models trained with a dose embedding).
    pub dose: Option<Tensor<1>>,
}

/// Transports control sets z0 [B, S, G] to predicted perturbed sets [B, S, G].
///
/// With `steps` = K, times t_k = k/K; each step predicts the endpoint z1_hat from (z_k, t_k) and
/// moves along v = (z1_hat - z_k) / (1 - t_k) by 1/K. K = 1 is the direct map z1_hat(z0, t = 0);
/// the last step always lands exactly on that step's z1_hat. Every step is a convex combination of
/// non-negative sets, so the output stays non-negative.
pub fn transport_sets(
    model: &TransportModel,
    z0: Tensor<3>,
    cond: &Conditions,
    steps: usize,
) -> Result<Tensor<3>, ModelError> {
    if steps == 0 {
        return Err(ModelError::Infer("the number of Euler steps must be at least 1".into()));
    }
    let [b, _, _] = z0.dims();
    let device = z0.device();
    let mut z = z0;
    for k in 0..steps {
        let t = k as f64 / steps as f64;
        let input = TransportInput {
            z_t: z.clone(),
            t: Tensor::<1>::zeros([b], &device).add_scalar(t),
            pert: cond.pert.clone(),
            context: cond.context.clone(),
            batch: cond.batch.clone(),
            dose: cond.dose.clone(),
        };
        let z1_hat = model.forward(input)?;
        // z + (1/K) (z1_hat - z) / (1 - t): the step fraction h / (1 - t) reaches 1 on the last step.
        let frac = (1.0 / steps as f64) / (1.0 - t);
        z = if k + 1 == steps {
            z1_hat
        } else {
            z.clone() + (z1_hat - z).mul_scalar(frac)
        };
    }
    Ok(z)
}
