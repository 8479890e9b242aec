//! scale-train: training of the endpoint-transport model — presets, batch sources, the data
//! contract, the training loop with checkpoints/resume, and prediction from a run directory.

pub mod config;
pub mod contract;
pub mod coupling;
pub mod metrics;
pub mod predict;
pub mod source;
pub mod store_source;
pub mod trainer;

pub use config::{Mode, TrainConfig};
pub use contract::DataContract;
pub use source::{BatchSource, InMemorySource, MemGroup};
pub use store_source::{check_store_matches, SplitSpec, StoreSource};
pub use trainer::{FitOptions, FitReport, MetricLine, StepStats, Trainer, ValStats};

use std::path::Path;

/// Errors of training and prediction.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A config file is malformed or has out-of-range values.
    #[error("config {path}: {msg}")]
    Config { path: String, msg: String },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// Data that does not fit the model or is inconsistent.
    #[error("data: {0}")]
    Data(String),
    /// Input that does not match the run's data contract.
    #[error("data contract: {0}")]
    Contract(String),
    /// A run cannot be created or resumed.
    #[error("run: {0}")]
    Resume(String),
    /// The loss became NaN or infinite.
    #[error("training diverged at step {step}: loss {loss}")]
    Diverged { step: u64, loss: f64 },
    /// Model construction, inputs or weights.
    #[error(transparent)]
    Model(#[from] scale_model::ModelError),
}

impl TrainError {
    /// An I/O error naming the file.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Sizes the global thread pool the CPU backend computes on (0 = one thread per core). Call once,
/// before any tensor work; later calls are ignored (the pool exists by then).
pub fn set_threads(n: usize) {
    if n > 0 {
        if let Err(e) = rayon::ThreadPoolBuilder::new().num_threads(n).build_global() {
            tracing::debug!("thread pool already built: {e}");
        }
    }
}
