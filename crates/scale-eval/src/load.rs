//! Thin loader: one `.h5ad` side of an evaluation (X, perturbation labels, gene and cell names),
//! with cell-eval's counts detection applied. Layers and obsm are not read.

use std::path::Path;

use scale_io::{H5adReader, Matrix};

use crate::error::{EvalError, Result};
use crate::{ensure_log1p, EvalData, SpaceAction};

/// An evaluation input read from a file.
pub struct Side {
    pub which: String,
    pub x: Matrix,
    pub labels: Vec<String>,
    pub genes: Vec<String>,
    pub cells: Vec<String>,
    /// Values of `--celltype-col`, when asked for.
    pub celltypes: Option<Vec<String>>,
    pub space: SpaceAction,
}

impl Side {
    pub fn view(&self) -> EvalData<'_> {
        EvalData {
            which: &self.which,
            x: &self.x,
            labels: &self.labels,
            genes: &self.genes,
            cell_names: Some(&self.cells),
        }
    }

    /// The cells of one cell type (labels, names and rows subset alike).
    pub fn select(&self, rows: &[usize]) -> Side {
        Side {
            which: self.which.clone(),
            x: self.x.select_rows(rows),
            labels: rows.iter().map(|&r| self.labels[r].clone()).collect(),
            genes: self.genes.clone(),
            cells: rows.iter().map(|&r| self.cells[r].clone()).collect(),
            celltypes: self
                .celltypes
                .as_ref()
                .map(|c| rows.iter().map(|&r| c[r].clone()).collect()),
            space: self.space,
        }
    }

    /// Keeps columns `cols` (in that order).
    pub fn select_genes(&mut self, cols: &[usize]) {
        self.x = self.x.select_cols(cols);
        self.genes = cols.iter().map(|&c| self.genes[c].clone()).collect();
    }
}

/// Reads `path`: X (normalised + log1p when it holds integer counts, as cell-eval does), the labels
/// of `pert_col` and optionally of `celltype_col`.
pub fn read_side(path: &Path, which: &str, pert_col: &str, celltype_col: Option<&str>) -> Result<Side> {
    read_side_reusing(path, which, pert_col, celltype_col, None)
}

/// [`read_side`], X written into the buffers of `spare` (the matrix of a side already evaluated) where
/// they are large enough, instead of fresh memory.
pub fn read_side_reusing(
    path: &Path,
    which: &str,
    pert_col: &str,
    celltype_col: Option<&str>,
    spare: Option<Matrix>,
) -> Result<Side> {
    let r = H5adReader::open(path)?;
    let obs = r.read_obs()?;
    let var = r.read_var()?;
    let col = |name: &str| -> Result<Vec<String>> {
        obs.column(name)
            .map(|c| c.to_strings())
            .ok_or_else(|| EvalError::MissingColumn {
                file: path.to_path_buf(),
                column: name.to_string(),
                available: obs.column_names().join(", "),
            })
    };
    let labels = col(pert_col)?;
    let celltypes = celltype_col.map(col).transpose()?;
    // CSR rows come back with sorted column indices (the reader sorts them; DE and the energy
    // distance rely on it)
    let mut x = match spare {
        Some(spare) => r.read_x_reusing(spare)?,
        None => r.read_x()?,
    };
    let space = ensure_log1p(&mut x, &format!("{which} ({})", path.display()))?;
    if let SpaceAction::Normalised { target_sum } = space {
        tracing::warn!(
            "{which} ({}): X holds integer counts; normalising to the median library size ({target_sum}) and \
             applying log1p, as cell-eval does",
            path.display()
        );
    }
    Ok(Side {
        which: which.to_string(),
        x,
        labels,
        genes: var.index,
        cells: obs.index,
        celltypes,
        space,
    })
}
