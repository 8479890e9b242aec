//! Where training batches come from: a small trait, an in-memory implementation (tests, small
//! data) and, in `store_source`, the on-disk store's sampler.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use scale_store::SetBatch;
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// A deterministic stream of batches whose position can be saved and restored, so a resumed run
/// draws exactly the batches an uninterrupted one would.
pub trait BatchSource {
    /// The next batch (buffers are reused between calls).
    fn next_batch(&mut self) -> Result<&SetBatch, TrainError>;
    /// The position in the stream, serialisable.
    fn state(&self) -> serde_json::Value;
    /// Returns to a position produced by [`state`](Self::state).
    fn restore(&mut self, state: &serde_json::Value) -> Result<(), TrainError>;
}

/// One condition's cells, dense row-major [n_cells, G].
#[derive(Debug, Clone)]
pub struct MemGroup {
    /// Perturbation index.
    pub pert: u32,
    /// Context index.
    pub context: u32,
    /// Batch index.
    pub batch: u32,
    /// Cells, [n_cells, G].
    pub cells: Vec<f32>,
}

/// Sets drawn from groups held in memory: each set picks a perturbed group uniformly, S of its
/// cells and S control cells of the same context (with replacement when the group is smaller
/// than S).
pub struct InMemorySource {
    n_genes: usize,
    groups: Vec<MemGroup>,
    /// Control cells per context index, [n, G] each.
    controls: Vec<Vec<f32>>,
    seed: u64,
    drawn: u64,
    rng: StdRng,
    batch: SetBatch,
}

#[derive(Serialize, Deserialize)]
struct MemState {
    seed: u64,
    drawn: u64,
}

impl InMemorySource {
    /// `controls[c]` holds the control cells of context c, row-major [n, G].
    pub fn new(
        n_genes: usize,
        groups: Vec<MemGroup>,
        controls: Vec<Vec<f32>>,
        n_sets: usize,
        set_size: usize,
        seed: u64,
    ) -> Result<Self, TrainError> {
        if groups.is_empty() {
            return Err(TrainError::Data("in-memory source: no perturbed groups".into()));
        }
        for (i, g) in groups.iter().enumerate() {
            if g.cells.is_empty() || g.cells.len() % n_genes != 0 {
                return Err(TrainError::Data(format!(
                    "in-memory group {i}: cells are not a non-empty [n, {n_genes}]"
                )));
            }
            let pool = controls.get(g.context as usize).ok_or_else(|| {
                TrainError::Data(format!(
                    "in-memory group {i}: no control pool for context {}",
                    g.context
                ))
            })?;
            if pool.is_empty() || pool.len() % n_genes != 0 {
                return Err(TrainError::Data(format!(
                    "control pool of context {}: not a non-empty [n, {n_genes}]",
                    g.context
                )));
            }
        }
        Ok(Self {
            n_genes,
            groups,
            controls,
            seed,
            drawn: 0,
            rng: StdRng::seed_from_u64(seed),
            batch: SetBatch::zeros(n_sets, set_size, n_genes),
        })
    }

    fn draw(&mut self) {
        let (s, g) = (self.batch.set_size, self.n_genes);
        for b in 0..self.batch.n_sets {
            let gi = self.rng.gen_range(0..self.groups.len());
            let group = &self.groups[gi];
            let pool = &self.controls[group.context as usize];
            let (n_pert, n_ctrl) = (group.cells.len() / g, pool.len() / g);
            for c in 0..s {
                let i = self.rng.gen_range(0..n_pert);
                let j = self.rng.gen_range(0..n_ctrl);
                let dst = (b * s + c) * g;
                self.batch.target[dst..dst + g].copy_from_slice(&group.cells[i * g..(i + 1) * g]);
                self.batch.control[dst..dst + g].copy_from_slice(&pool[j * g..(j + 1) * g]);
            }
            self.batch.pert[b] = group.pert;
            self.batch.context[b] = group.context;
            self.batch.batch[b] = group.batch;
        }
        self.drawn += 1;
    }
}

impl BatchSource for InMemorySource {
    fn next_batch(&mut self) -> Result<&SetBatch, TrainError> {
        self.draw();
        Ok(&self.batch)
    }

    fn state(&self) -> serde_json::Value {
        serde_json::to_value(MemState {
            seed: self.seed,
            drawn: self.drawn,
        })
        .unwrap_or_default()
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<(), TrainError> {
        let st: MemState = serde_json::from_value(state.clone())
            .map_err(|e| TrainError::Resume(format!("in-memory sampler state: {e}")))?;
        if st.seed != self.seed {
            return Err(TrainError::Resume(format!(
                "sampler seed {} differs from the run's {}",
                st.seed, self.seed
            )));
        }
        // Replaying draws is cheap (index arithmetic and row copies) and needs no RNG serialisation.
        self.rng = StdRng::seed_from_u64(self.seed);
        self.drawn = 0;
        for _ in 0..st.drawn {
            self.draw();
        }
        Ok(())
    }
}
