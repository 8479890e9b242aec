//! Baselines: predictors so simple that a model which does not beat them is not done
//! (Ahlmann-Eltze et al., Nature Methods 2025). All work in the data's expression space (log1p) on
//! pseudobulk means of the training groups, and produce cells as "control cells + predicted mean shift".
//!
//! - `context-mean`: every perturbation in context c looks like the mean of all perturbed training cells of c.
//! - `additive`: control cells of c + the perturbation's mean delta (vs its context's controls) averaged over
//!   the training contexts where it was seen; a combination `A+B` adds the deltas of A and B.
//! - `linear`: ridge regression of the delta on [perturbation features ; context one-hot], fitted on the
//!   training groups; with a feature table it predicts unseen perturbations.
//!
//! (cell-eval's cell-mean baseline lives in `scale-eval`, as cell-eval builds it.)

mod fit;
mod from_store;
mod ridge;

pub use fit::{BaselineError, BaselineKind, Fitted, GroupMean, PertFeatures, TrainingMeans};
pub use from_store::{predict_template, training_means, PredictReport};
