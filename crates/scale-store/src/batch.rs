//! The unit the sampler hands to training: B matched (control set, perturbed set) pairs of S cells.

/// Dense, reused buffers. Row-major: cell `s` of set `b` is `control[(b * S + s) * G ..][..G]`.
#[derive(Debug, Clone, Default)]
pub struct SetBatch {
    /// Sets per batch (B).
    pub n_sets: usize,
    /// Cells per set (S).
    pub set_size: usize,
    /// Features per cell (G: genes or embedding dimensions).
    pub n_features: usize,
    /// Control cells, [B, S, G].
    pub control: Vec<f32>,
    /// Perturbed cells, [B, S, G].
    pub target: Vec<f32>,
    /// Perturbation index into the store's perturbation vocabulary, [B].
    pub pert: Vec<u32>,
    /// Context index (cell line / cell type), [B].
    pub context: Vec<u32>,
    /// Batch index (gem group, plate), [B].
    pub batch: Vec<u32>,
    /// Dose of the perturbed set (0 for identity sets and stores without doses), [B].
    pub dose: Vec<f32>,
}

impl SetBatch {
    /// Empty buffers of the right size.
    pub fn zeros(n_sets: usize, set_size: usize, n_features: usize) -> Self {
        let n = n_sets * set_size * n_features;
        Self {
            n_sets,
            set_size,
            n_features,
            control: vec![0.0; n],
            target: vec![0.0; n],
            pert: vec![0; n_sets],
            context: vec![0; n_sets],
            batch: vec![0; n_sets],
            dose: vec![0.0; n_sets],
        }
    }
}
