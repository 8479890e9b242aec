//! scale-store: the condition-grouped, memory-mapped cell store, splits and the set sampler.

pub mod batch;

pub use batch::SetBatch;
