//! Sampler throughput measurement, for `scale bench sampler` and `examples/store_bench.rs`.

use std::sync::Arc;
use std::time::Instant;

use crate::error::StoreError;
use crate::sampler::{Sampler, SamplerConfig};
use crate::store::Store;

#[derive(Debug, Clone, PartialEq)]
pub struct SamplerBench {
    pub batches: u64,
    /// Perturbed cells delivered per second (B·S per batch), each with a matched control cell: the unit
    /// cell-load's loader throughput is quoted in.
    pub cells_per_s: f64,
    /// Dense rows written per second (control + perturbed, 2·B·S per batch).
    pub rows_per_s: f64,
    pub seconds: f64,
    pub n_features: usize,
    pub fallback_sets: u64,
}

/// Draws `warmup` then `batches` batches from all groups of `store` and times the latter. A checksum of
/// every batch is folded in so the work cannot be optimised away.
pub fn bench_sampler(
    store: Arc<Store>,
    cfg: SamplerConfig,
    warmup: u64,
    batches: u64,
) -> Result<(SamplerBench, f64), StoreError> {
    let groups: Vec<usize> = (0..store.n_groups()).collect();
    let n_features = store.n_features();
    let (b, s) = (cfg.n_sets, cfg.set_size);
    let mut sampler = Sampler::new(store, groups, cfg)?;
    let mut check = 0f64;
    for _ in 0..warmup {
        let batch = sampler.next_batch()?;
        check += batch.target[0] as f64;
    }
    let t0 = Instant::now();
    for _ in 0..batches {
        let batch = sampler.next_batch()?;
        check += batch.target[batch.target.len() - 1] as f64 + batch.control[0] as f64;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cells = (batches * (b * s) as u64) as f64;
    Ok((
        SamplerBench {
            batches,
            cells_per_s: cells / secs,
            rows_per_s: 2.0 * cells / secs,
            seconds: secs,
            n_features,
            fallback_sets: sampler.stats().fallback_sets,
        },
        check,
    ))
}
