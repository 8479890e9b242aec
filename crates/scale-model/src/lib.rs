//! scale-model: the conditional endpoint-transport set model (burn), its losses, perturbation
//! encoders, weight I/O and the Euler sampler used for inference.

pub mod device;
pub mod fused;
pub mod infer;
pub mod loss;
mod panels;
pub mod pert;
pub mod transport;
pub mod weights;

pub use device::{wgpu_adapter_available, DeviceChoice};
pub use fused::FusedTransport;
pub use infer::{transport_sets, transport_sets_fused, transport_sets_fused_encoded, Conditions};
pub use loss::{energy_distance, LossConfig, LossParts};
pub use pert::{FeatureTable, PertEncoder};
pub use transport::{DataDims, ModelConfig, PertEncoding, TransportConfig, TransportInput, TransportModel};

/// The burn framework, re-exported so callers use the exact same version.
pub use burn;

/// Errors of model construction, inputs and weight files.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A configuration value cannot build a network.
    #[error("model config: `{field}` must be {expected}")]
    Config {
        field: &'static str,
        expected: &'static str,
    },
    /// An input's leading dimension does not match the number of sets.
    #[error("model input `{what}`: expected {expected} sets, got {got}")]
    Shape {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// The model has an embedding for an input the caller did not provide.
    #[error("model input `{0}` is required by this model (it was trained with it) but was not given")]
    MissingInput(&'static str),
    /// A perturbation (component) the encoder cannot represent.
    #[error("perturbation {name:?}: component {component:?} is {hint}")]
    UnknownPerturbation {
        name: String,
        component: String,
        hint: &'static str,
    },
    /// A bad perturbation feature table.
    #[error("perturbation feature table {path}: {msg}")]
    FeatureTable { path: String, msg: String },
    /// Reading or writing a weight file failed.
    #[error("weights {path}: {msg}")]
    Weights { path: String, msg: String },
    /// Inference settings.
    #[error("inference: {0}")]
    Infer(String),
    /// A device that this binary or this machine cannot provide.
    #[error("device: {0}")]
    Device(String),
}
