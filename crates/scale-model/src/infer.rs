//! Inference: transport control sets to predicted perturbed sets with K Euler steps.

use burn::tensor::{Int, Tensor};

use crate::fused::FusedTransport;
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
    let schedule = euler_schedule(steps)?;
    let [b, _, _] = z0.dims();
    let device = z0.device();
    let mut z = z0;
    for (t, frac) in schedule {
        let input = TransportInput {
            z_t: z.clone(),
            t: Tensor::<1>::zeros([b], &device).add_scalar(t),
            pert: cond.pert.clone(),
            context: cond.context.clone(),
            batch: cond.batch.clone(),
            dose: cond.dose.clone(),
        };
        let z1_hat = model.forward(input)?;
        z = match frac {
            Some(frac) => z.clone() + (z1_hat - z).mul_scalar(frac),
            None => z1_hat,
        };
    }
    Ok(z)
}

/// [`transport_sets`] with the fused CPU engine, in place: `z` holds the control sets [B·S, G]
/// (row-major, on the host) and receives the predicted sets; the set conditions come from `model`
/// (burn) and the per-cell network from `fused` (built from the same model by
/// [`TransportModel::fused`]). `scratch` is reused between calls, so repeated passes allocate nothing.
/// Same Euler scheme.
pub fn transport_sets_fused(
    model: &TransportModel,
    fused: &FusedTransport,
    z: &mut Vec<f32>,
    scratch: &mut Vec<f32>,
    s: usize,
    cond: &Conditions,
    steps: usize,
) -> Result<(), ModelError> {
    fused_steps(model, fused, z, None, scratch, s, cond, steps)
}

/// [`transport_sets_fused`] with the encoder's output for the control sets given: `encoded` [B·S, D]
/// is [`FusedTransport::encode`] of `z`'s rows as passed in. The first Euler step starts from the
/// controls themselves, so it skips the encoder; later steps (K > 1) encode their mixtures. Same
/// result as [`transport_sets_fused`].
#[allow(clippy::too_many_arguments)]
pub fn transport_sets_fused_encoded(
    model: &TransportModel,
    fused: &FusedTransport,
    z: &mut Vec<f32>,
    encoded: &[f32],
    scratch: &mut Vec<f32>,
    s: usize,
    cond: &Conditions,
    steps: usize,
) -> Result<(), ModelError> {
    if encoded.len() * fused.n_genes() != z.len() * fused.hidden() {
        return Err(ModelError::Infer(format!(
            "{} encoded values for {} cells: expected one row of {} per cell",
            encoded.len(),
            z.len() / fused.n_genes().max(1),
            fused.hidden()
        )));
    }
    fused_steps(model, fused, z, Some(encoded), scratch, s, cond, steps)
}

#[allow(clippy::too_many_arguments)]
fn fused_steps(
    model: &TransportModel,
    fused: &FusedTransport,
    z: &mut Vec<f32>,
    encoded: Option<&[f32]>,
    scratch: &mut Vec<f32>,
    s: usize,
    cond: &Conditions,
    steps: usize,
) -> Result<(), ModelError> {
    let schedule = euler_schedule(steps)?;
    let g = fused.n_genes();
    if s == 0 || !z.len().is_multiple_of(s * g) {
        return Err(ModelError::Infer(format!(
            "control sets of {} values are not whole sets of {s} cells × {g} genes",
            z.len()
        )));
    }
    let b = z.len() / (s * g);
    let device = cond.pert.device();
    // every value is overwritten by the forward pass
    scratch.resize(z.len(), 0.0);
    for (k, (t, frac)) in schedule.enumerate() {
        let c = model.set_conditions(
            Tensor::<1>::zeros([b], &device).add_scalar(t),
            cond.pert.clone(),
            cond.context.clone(),
            cond.batch.clone(),
            cond.dose.clone(),
        )?;
        let c: Vec<f32> = c
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| ModelError::Infer(format!("set conditions: {e:?}")))?;
        match encoded {
            Some(e) if k == 0 => fused.forward_encoded(z, e, &c, s, scratch),
            _ => fused.forward(z, &c, s, scratch),
        }
        match frac {
            Some(frac) => {
                let frac = frac as f32;
                for (zi, &e) in z.iter_mut().zip(scratch.iter()) {
                    *zi += (e - *zi) * frac;
                }
            }
            None => std::mem::swap(z, scratch),
        }
    }
    Ok(())
}

/// The Euler scheme of K = `steps` steps: per step, the time t_k = k/K and the fraction of the way to
/// the predicted endpoint to move, h / (1 - t_k) with h = 1/K; `None` on the last step, which lands
/// exactly on that step's endpoint.
fn euler_schedule(steps: usize) -> Result<impl Iterator<Item = (f64, Option<f64>)>, ModelError> {
    if steps == 0 {
        return Err(ModelError::Infer("the number of Euler steps must be at least 1".into()));
    }
    Ok((0..steps).map(move |k| {
        let t = k as f64 / steps as f64;
        let frac = (k + 1 < steps).then(|| (1.0 / steps as f64) / (1.0 - t));
        (t, frac)
    }))
}
