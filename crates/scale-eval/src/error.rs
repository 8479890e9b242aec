//! Typed errors of the evaluation engine. Each names the input (real/pred, a file, a column) and what
//! was expected.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{which}: {n_labels} perturbation labels for {n_cells} cells; expected one label per cell")]
    LabelCount {
        which: String,
        n_labels: usize,
        n_cells: usize,
    },
    #[error("{which}: {n_genes} gene names for a matrix with {n_cols} columns")]
    GeneCount {
        which: String,
        n_genes: usize,
        n_cols: usize,
    },
    #[error(
        "gene names differ between real and pred: first difference at position {index}: real `{real}` vs pred `{pred}` \
         (real has {n_real} genes, pred {n_pred}); pass --align-genes to evaluate on the shared genes"
    )]
    GenesDiffer {
        index: usize,
        real: String,
        pred: String,
        n_real: usize,
        n_pred: usize,
    },
    #[error("real and pred share no gene names; cannot align")]
    NoSharedGenes,
    #[error(
        "perturbation labels differ between real and pred: only in real: [{only_real}]; only in pred: [{only_pred}]"
    )]
    PertsDiffer { only_real: String, only_pred: String },
    #[error("{which}: control label `{control}` not found among the perturbation labels (first labels: {seen})")]
    ControlMissing {
        which: String,
        control: String,
        seen: String,
    },
    #[error("{which}: X has a non-finite value {value} at cell {cell} (`{cell_name}`), gene {gene} (`{gene_name}`)")]
    NonFinite {
        which: String,
        value: f32,
        cell: usize,
        cell_name: String,
        gene: usize,
        gene_name: String,
    },
    #[error("{which}: X has a negative value {value} at cell {cell}, gene {gene} (`{gene_name}`); expected log1p-normalised expression (>= 0)")]
    Negative {
        which: String,
        value: f32,
        cell: usize,
        gene: usize,
        gene_name: String,
    },
    #[error("{which}: X has max value {max} >= 15 with fractional values; expected log1p-normalised data (cell-eval's rule)")]
    NotLog1p { which: String, max: f32 },
    #[error("{which}: no perturbation other than the control `{control}`")]
    NoPerturbations { which: String, control: String },
    #[error("unknown metric `{0}` in --skip-metrics; known: {1}")]
    UnknownMetric(String, String),
    #[error("unknown profile `{0}`; expected one of full, minimal, vcc, de, anndata, pds")]
    UnknownProfile(String),
    #[error("{file}: {message}")]
    Csv { file: PathBuf, message: String },
    #[error("{file}: I/O error: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    H5ad(#[from] scale_io::H5adError),
    #[error("{file}: obs has no column `{column}`; columns are: {available}")]
    MissingColumn {
        file: PathBuf,
        column: String,
        available: String,
    },
    #[error("DE tables disagree: {0}")]
    DeMismatch(String),
    #[error("score: {0}")]
    Score(String),
}

pub type Result<T> = std::result::Result<T, EvalError>;
