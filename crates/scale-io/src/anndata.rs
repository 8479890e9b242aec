//! The in-memory AnnData object.

use crate::{DenseMatrix, Frame, Matrix};

/// An annotated cells × genes matrix. `uns` keeps only string entries (what scale writes and needs);
/// other `uns` content is skipped on read.
#[derive(Debug, Clone, PartialEq)]
pub struct AnnData {
    pub x: Matrix,
    pub obs: Frame,
    pub var: Frame,
    pub layers: Vec<(String, Matrix)>,
    pub obsm: Vec<(String, DenseMatrix)>,
    pub uns: Vec<(String, String)>,
}

impl AnnData {
    pub fn new(x: Matrix, obs: Frame, var: Frame) -> Self {
        Self {
            x,
            obs,
            var,
            layers: Vec::new(),
            obsm: Vec::new(),
            uns: Vec::new(),
        }
    }

    pub fn n_obs(&self) -> usize {
        self.obs.len()
    }

    pub fn n_vars(&self) -> usize {
        self.var.len()
    }

    pub fn layer(&self, name: &str) -> Option<&Matrix> {
        self.layers.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }

    pub fn obsm(&self, name: &str) -> Option<&DenseMatrix> {
        self.obsm.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }

    /// Cells `rows` (in order) with every per-cell field subset alike.
    pub fn select_rows(&self, rows: &[usize]) -> AnnData {
        AnnData {
            x: self.x.select_rows(rows),
            obs: self.obs.select(rows),
            var: self.var.clone(),
            layers: self
                .layers
                .iter()
                .map(|(n, m)| (n.clone(), m.select_rows(rows)))
                .collect(),
            obsm: self
                .obsm
                .iter()
                .map(|(n, m)| (n.clone(), m.select_rows(rows)))
                .collect(),
            uns: self.uns.clone(),
        }
    }
}
