//! scale-prep: preprocessing that reproduces scanpy numerically, and a synthetic Perturb-seq generator.
//!
//! - [`normalize`]: `normalize_total` (scanpy's float32 arithmetic and median rule) and `log1p`.
//! - [`hvg`]: highly variable genes, `flavor="seurat"` (binned normalised dispersion on log data) and
//!   `flavor="seurat_v3"` (loess-regularised variance on counts), with optional batches.
//! - [`loess`]: Cleveland's loess (local quadratic, tricube), the k-d tree + vertex interpolation surface
//!   that `skmisc.loess` uses by default and the direct surface.
//! - [`genes`]: subsetting genes by a name list, reporting the missing names.
//! - [`synth`]: a seeded, streaming negative-binomial Perturb-seq generator with known ground truth.

pub mod error;
pub mod genes;
pub mod hvg;
pub mod loess;
pub mod normalize;
pub mod stats;
pub mod synth;

pub use error::{require_space, PrepError};
pub use genes::{select_genes, GeneSelection};
pub use hvg::{highly_variable_genes, HvgFlavor, HvgOptions, HvgResult};
pub use normalize::{log1p, normalize_total, NormalizeReport};
