//! The data contract a run was trained under, saved in the run directory so that prediction can
//! check its inputs (gene order, expression space, vocabularies) and label its outputs.

use std::path::Path;

use scale_model::{FeatureTable, PertEncoder, PertEncoding};
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// Everything about the data a model's inputs and outputs mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataContract {
    /// Gene (feature) names, in the model's input/output order.
    pub genes: Vec<String>,
    /// Expression space of the cells (`log1p`, `raw-counts`, `other`).
    pub space: String,
    /// Perturbation vocabulary of the training data (index = `SetBatch::pert`).
    pub perts: Vec<String>,
    /// The control label (cells of this perturbation are the controls).
    pub control_pert: String,
    /// Context vocabulary (index = `SetBatch::context`).
    pub contexts: Vec<String>,
    /// Batch vocabulary (index = `SetBatch::batch`).
    pub batches: Vec<String>,
    /// obs column holding the perturbation (written in predictions).
    pub pert_col: String,
    /// obs column holding the context.
    pub context_col: String,
    /// obs column holding the batch, if the data has one.
    #[serde(default)]
    pub batch_col: Option<String>,
    /// obs column holding the dose, if the data has doses (written in predictions).
    #[serde(default)]
    pub dose_col: Option<String>,
    /// How perturbations are encoded.
    pub pert_encoding: PertEncoding,
    /// One-hot vocabulary of single perturbations (empty with a feature table).
    #[serde(default)]
    pub pert_components: Vec<String>,
    /// File name (inside the run dir) of the perturbation feature table, if any.
    #[serde(default)]
    pub pert_features_file: Option<String>,
}

/// File name of the feature table copy in a run directory.
pub const FEATURES_FILE: &str = "pert_features.csv";

impl DataContract {
    /// Reads `contract.json`.
    pub fn read(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| TrainError::Config {
            path: path.display().to_string(),
            msg: e.to_string(),
        })
    }

    /// The perturbation encoder; `run_dir` holds the feature table copy.
    pub fn pert_encoder(&self, run_dir: &Path) -> Result<PertEncoder, TrainError> {
        match self.pert_encoding {
            PertEncoding::OneHot => Ok(PertEncoder::from_components(self.pert_components.clone())),
            PertEncoding::Features => {
                let file = self.pert_features_file.as_deref().ok_or_else(|| TrainError::Config {
                    path: run_dir.join("contract.json").display().to_string(),
                    msg: "pert_encoding is features but pert_features_file is missing".into(),
                })?;
                Ok(PertEncoder::Features(FeatureTable::read(&run_dir.join(file))?))
            }
        }
    }

    /// Row-major [n_perts, P] encodings of the training vocabulary (index = `SetBatch::pert`) and,
    /// per perturbation, whether it could be encoded (perturbations held out of training have no
    /// one-hot row; a batch that references one is an error, never a zero vector).
    pub fn encode_vocab(&self, enc: &PertEncoder) -> (Vec<f32>, Vec<bool>) {
        let p = enc.dim();
        let mut out = vec![0.0f32; self.perts.len() * p];
        let mut ok = vec![false; self.perts.len()];
        for (i, name) in self.perts.iter().enumerate() {
            ok[i] = enc
                .encode_into(name, &self.control_pert, &mut out[i * p..(i + 1) * p])
                .is_ok();
            if !ok[i] {
                out[i * p..(i + 1) * p].fill(0.0);
            }
        }
        (out, ok)
    }

    /// Index of a gene-order mismatch: the first position where `genes` differs, if any.
    pub fn check_genes(&self, genes: &[String], source: &str) -> Result<(), TrainError> {
        if genes.len() != self.genes.len() {
            return Err(TrainError::Contract(format!(
                "{source}: {} genes, the run was trained on {} (var must be the run's genes in the run's order)",
                genes.len(),
                self.genes.len()
            )));
        }
        if let Some(i) = genes.iter().zip(&self.genes).position(|(a, b)| a != b) {
            return Err(TrainError::Contract(format!(
                "{source}: gene {i} is {:?}, the run expects {:?} (same genes in the same order required)",
                genes[i], self.genes[i]
            )));
        }
        Ok(())
    }

    /// Checks an input's expression space against the run's.
    pub fn check_space(&self, space: &str, source: &str) -> Result<(), TrainError> {
        if space != self.space {
            return Err(TrainError::Contract(format!(
                "{source}: expression space is {space}, the run was trained on {} cells",
                self.space
            )));
        }
        Ok(())
    }

    /// Index of a context name.
    pub fn context_index(&self, name: &str) -> Result<usize, TrainError> {
        self.contexts.iter().position(|c| c == name).ok_or_else(|| {
            TrainError::Contract(format!(
                "context {name:?} is not one of the run's contexts {:?}",
                self.contexts
            ))
        })
    }
}
