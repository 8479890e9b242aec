//! Typed errors of ingest, the store, splits and the sampler. Each names the file or input, the field and
//! what was expected.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    H5ad(#[from] scale_io::H5adError),
    #[error("{path}: I/O error: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{input}: obs has no column `{column}` ({what}); available columns: {available}")]
    MissingColumn {
        input: String,
        column: String,
        what: String,
        available: String,
    },
    #[error("{input}: control label `{label}` does not occur in column `{column}`; labels seen include: {seen}")]
    UnknownControl {
        input: String,
        column: String,
        label: String,
        seen: String,
    },
    #[error("{input}: cell `{cell}` (row {row}) has a missing value in column `{column}`")]
    MissingLabel {
        input: String,
        column: String,
        row: usize,
        cell: String,
    },
    #[error("{input}: obs[{column:?}] row {row} (cell `{cell}`): {detail}; doses must be numbers >= 0")]
    BadDose {
        input: String,
        column: String,
        row: usize,
        cell: String,
        /// What is wrong with the value, e.g. `dose -1 is negative`.
        detail: String,
    },
    #[error("duplicate cell name `{cell}` (in {first} and {second}); cell names must be unique across inputs")]
    DuplicateCell {
        cell: String,
        first: String,
        second: String,
    },
    #[error("{input}: duplicate gene name `{gene}` in the feature list")]
    DuplicateGene { input: String, gene: String },
    #[error(
        "gene lists differ: {input} has {n_missing} of the first input's genes missing (e.g. {missing}) and \
         {n_extra} extra (e.g. {extra}); pass --genes intersection or --genes union to combine them"
    )]
    GenesDiffer {
        input: String,
        n_missing: usize,
        missing: String,
        n_extra: usize,
        extra: String,
    },
    #[error("no genes left after intersecting the gene lists of the inputs")]
    EmptyGeneIntersection,
    #[error("{input}: {message}")]
    BadInput { input: String, message: String },
    #[error("{input}: value {value} at cell {row}, feature {col} is {problem}")]
    BadValue {
        input: String,
        row: usize,
        col: usize,
        value: f32,
        problem: String,
    },
    #[error("{input}: --normalize needs raw counts, but the input is in {space} space")]
    NormalizeNeedsCounts { input: String, space: String },
    #[error("{input}: context `{context}` has no control cells (label `{control}`), so its perturbed cells cannot be paired")]
    NoControls {
        input: String,
        context: String,
        control: String,
    },
    #[error("no cells to ingest: {0}")]
    Empty(String),
    #[error("{path}: already exists; remove it or pass --overwrite")]
    Exists { path: PathBuf },
    #[error("{path}: not a scale store ({message})")]
    NotAStore { path: PathBuf, message: String },
    #[error("{path}: store format version {found}, this build reads version {expected}")]
    Version { path: PathBuf, found: u32, expected: u32 },
    #[error("{path}: {file} is corrupt: {message}")]
    Corrupt {
        path: PathBuf,
        file: String,
        message: String,
    },
    #[error("{path}: manifest.json: {source}")]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("group {group} out of range (store has {n_groups} groups)")]
    NoSuchGroup { group: usize, n_groups: usize },
    #[error("{path}: parquet: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("split {source_name}: {message}")]
    Split { source_name: String, message: String },
    #[error("split {source_name}: unknown {kind} `{name}`; known: {known}")]
    UnknownName {
        source_name: String,
        kind: String,
        name: String,
        known: String,
    },
    #[error(
        "split {source_name}: (context `{context}`, perturbation `{pert}`) is held out in {part} but also in train"
    )]
    Leak {
        source_name: String,
        context: String,
        pert: String,
        part: String,
    },
    #[error("sampler: {0}")]
    Sampler(String),
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

/// First `n` items of a list, comma-separated, for error messages.
pub(crate) fn preview<S: AsRef<str>>(items: &[S], n: usize) -> String {
    let mut s: Vec<&str> = items.iter().take(n).map(|x| x.as_ref()).collect();
    if items.len() > n {
        s.push("...");
    }
    if s.is_empty() {
        return "(none)".into();
    }
    s.join(", ")
}
