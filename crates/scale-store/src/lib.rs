//! scale-store: the condition-grouped, memory-mapped cell store, splits and the set sampler.
//!
//! - [`writer::ingest`]: `.h5ad` files / Tahoe parquet shards → a store directory whose cells are grouped
//!   contiguously by (dataset, context, perturbation, dose, batch), built atomically with bounded memory.
//! - [`Store`]: opens a store (memory maps + [`Manifest`], the data contract), random access to groups.
//! - [`Split`]: STATE/cell-load TOML splits and programmatic hold-outs, as sets of group ids.
//! - [`Sampler`]: seeded, multi-threaded batches of matched (control set, perturbed set) pairs.

pub mod batch;
pub mod bench;
pub mod error;
pub mod manifest;
pub mod sampler;
pub mod source;
pub mod split;
pub mod store;
pub mod tahoe;
pub mod writer;

pub use batch::SetBatch;
pub use error::StoreError;
pub use manifest::{condition_label, GroupInfo, Layout, Manifest, FORMAT_VERSION};
pub use sampler::{Sampler, SamplerConfig, SamplerStats};
pub use source::{CellSource, H5adSource, LabelSpec, MemorySource, ValueSource};
pub use split::{Holdout, Part, Split, SplitReport};
pub use store::Store;
pub use tahoe::TahoeSource;
pub use writer::{ingest, GeneMode, IngestOptions};
