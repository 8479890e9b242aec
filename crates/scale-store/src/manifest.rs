//! The store's data contract, `manifest.json`: what the arrays mean, in which order, in which space.

use scale_io::ExpressionSpace;
use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change of the files or their meaning.
pub const FORMAT_VERSION: u32 = 1;
pub const MANIFEST_FILE: &str = "manifest.json";
pub const INDPTR_FILE: &str = "indptr.u64";
pub const INDICES_FILE: &str = "indices.u32";
pub const DATA_FILE: &str = "data.f32";
pub const DENSE_FILE: &str = "dense.f32";
pub const CELLS_FILE: &str = "cells.txt";

/// How cell rows are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// CSR: `indptr.u64` [n_cells + 1], `indices.u32` [nnz], `data.f32` [nnz] (little-endian).
    Sparse,
    /// Row-major `dense.f32` [n_cells, n_features] (obsm embeddings).
    Dense,
}

/// Normalisation applied at ingest (none when the input was stored as read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Each cell scaled to this total before log1p (`None`: not normalised).
    pub target_sum: Option<f64>,
    pub log1p: bool,
}

/// One input file (or Tahoe shard set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub name: String,
    /// Input paths as given.
    pub inputs: Vec<String>,
    /// Where the values came from: `X`, `layer:NAME`, `obsm:KEY` or `tahoe`.
    pub source: String,
    pub n_cells: u64,
    /// Genes of this input that are not in the store's gene list (dropped by `--genes intersection`).
    pub n_genes_dropped: usize,
    /// Store genes absent from this input, stored as zeros (only with `--genes union`).
    pub n_genes_missing: usize,
}

/// One contiguous run of cells sharing (dataset, context, perturbation, batch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub dataset: u32,
    pub context: u32,
    pub pert: u32,
    pub batch: u32,
    /// Dose of every cell of the group (0: untreated, a control, or a store without doses).
    #[serde(default)]
    pub dose: f32,
    /// First cell (row) of the group in the store.
    pub offset: u64,
    pub n_cells: u64,
}

/// A perturbation label and how many cells carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PertInfo {
    pub name: String,
    pub n_cells: u64,
}

/// xxh3-64 of each array file, hex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checksum {
    pub file: String,
    pub bytes: u64,
    pub xxh3_64: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub layout: Layout,
    pub n_cells: u64,
    /// Stored non-zeros (sparse) or n_cells × n_features (dense).
    pub nnz: u64,
    /// Ordered feature names (genes, or `KEY:i` for embeddings without names). Column j of every row is
    /// `genes[j]`.
    pub genes: Vec<String>,
    /// Expression space of the stored values (detected over every stored value).
    #[serde(with = "space_serde")]
    pub space: ExpressionSpace,
    pub normalization: Normalization,
    /// Column names of the inputs (`tahoe` inputs record the parquet field names used).
    pub pert_col: String,
    pub context_col: Option<String>,
    pub batch_col: Option<String>,
    /// obs column the doses came from (`None`: the store has no doses; every group's dose is 0).
    #[serde(default)]
    pub dose_col: Option<String>,
    pub control_label: String,
    /// Perturbation vocabulary (sorted, control included) with cell counts.
    pub perts: Vec<String>,
    pub pert_counts: Vec<u64>,
    /// Index of the control label in `perts`.
    pub control_pert: u32,
    pub contexts: Vec<String>,
    /// Batch labels; qualified as `dataset/batch` when the store has several datasets.
    pub batches: Vec<String>,
    pub datasets: Vec<DatasetInfo>,
    /// Sorted by (dataset, context, pert, dose, batch); offsets increase.
    pub groups: Vec<GroupInfo>,
    pub checksums: Vec<Checksum>,
    /// Free-form notes from ingest (gene alignment, Tahoe sentinel tokens, ...).
    pub notes: Vec<String>,
}

impl Manifest {
    pub fn n_features(&self) -> usize {
        self.genes.len()
    }

    pub fn pert_index(&self, name: &str) -> Option<u32> {
        self.perts.iter().position(|p| p == name).map(|i| i as u32)
    }

    pub fn context_index(&self, name: &str) -> Option<u32> {
        self.contexts.iter().position(|p| p == name).map(|i| i as u32)
    }

    pub fn dataset_index(&self, name: &str) -> Option<u32> {
        self.datasets.iter().position(|d| d.name == name).map(|i| i as u32)
    }

    pub fn is_control_group(&self, g: usize) -> bool {
        self.groups[g].pert == self.control_pert
    }
}

/// `ExpressionSpace` as its `as_str` name (`raw-counts`, `log1p`, `other`).
mod space_serde {
    use scale_io::ExpressionSpace;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &ExpressionSpace, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<ExpressionSpace, D::Error> {
        let s = String::deserialize(de)?;
        ExpressionSpace::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown expression space `{s}`")))
    }
}

/// The condition label of a perturbation at a dose: `PERT@DOSE` (dose in its shortest decimal form,
/// as `--holdout-doses` takes it), the bare name at dose 0 (controls, non-drug perturbations).
pub fn condition_label(pert: &str, dose: f32) -> String {
    if dose == 0.0 {
        pert.to_string()
    } else {
        format!("{pert}@{dose}")
    }
}

/// The manifest as pretty JSON (what `manifest.json` holds).
pub fn to_json(m: &Manifest) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stores written before doses existed have no `dose_col` and no per-group `dose`: they open as
    /// stores without doses (every group at dose 0).
    #[test]
    fn manifest_without_dose_fields_reads_as_dose_zero() {
        let json = r#"{
            "format_version": 1, "layout": "sparse", "n_cells": 3, "nnz": 0, "genes": ["g0"],
            "space": "log1p", "normalization": {"target_sum": null, "log1p": false},
            "pert_col": "gene", "context_col": null, "batch_col": null, "control_label": "ctrl",
            "perts": ["A", "ctrl"], "pert_counts": [1, 2], "control_pert": 1, "contexts": ["d"],
            "batches": ["all"], "datasets": [], "checksums": [], "notes": [],
            "groups": [
                {"dataset": 0, "context": 0, "pert": 0, "batch": 0, "offset": 0, "n_cells": 1},
                {"dataset": 0, "context": 0, "pert": 1, "batch": 0, "offset": 1, "n_cells": 2}
            ]
        }"#;
        let m: Manifest = serde_json::from_str(json).unwrap();
        assert_eq!(m.dose_col, None);
        assert!(m.groups.iter().all(|g| g.dose == 0.0));
        // and a written manifest carries the dose of each group
        let back: Manifest = serde_json::from_str(&to_json(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        assert!(to_json(&m).unwrap().contains("\"dose\": 0.0"));
    }
}
