//! The small synthetic problem shared by the training tests: 12 genes, two contexts, perturbations
//! A, B and A+B with known shifts.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use scale_train::{DataContract, MemGroup};

/// Genes of the synthetic problem.
pub const G: usize = 12;

/// Controls: per-context baseline + noise; perturbation A raises genes 0..4, B lowers genes 4..8,
/// A+B does both.
pub fn data(seed: u64) -> (DataContract, Vec<MemGroup>, Vec<Vec<f32>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let perts: Vec<String> = ["ctrl", "A", "B", "A+B"].iter().map(|s| s.to_string()).collect();
    let contexts = vec!["c0".to_string(), "c1".to_string()];
    let base = |ctx: usize, j: usize| 1.0 + 0.5 * ctx as f32 + 0.1 * j as f32;
    let cell = |ctx: usize, pert: &str, rng: &mut StdRng| -> Vec<f32> {
        (0..G)
            .map(|j| {
                let mut v = base(ctx, j) + rng.gen_range(-0.2..0.2);
                if pert.contains('A') && j < 4 {
                    v += 1.5;
                }
                if pert.contains('B') && (4..8).contains(&j) {
                    v -= 0.8;
                }
                v.max(0.0)
            })
            .collect()
    };
    let mut controls = Vec::new();
    let mut groups = Vec::new();
    for ctx in 0..2 {
        controls.push((0..40).flat_map(|_| cell(ctx, "ctrl", &mut rng)).collect());
        for (pi, p) in perts.iter().enumerate().skip(1) {
            groups.push(MemGroup {
                pert: pi as u32,
                context: ctx as u32,
                batch: 0,
                cells: (0..20).flat_map(|_| cell(ctx, p, &mut rng)).collect(),
            });
        }
    }
    let contract = DataContract {
        genes: (0..G).map(|j| format!("g{j}")).collect(),
        space: "log1p".into(),
        perts,
        control_pert: "ctrl".into(),
        contexts,
        batches: vec!["b0".into()],
        pert_col: "target_gene".into(),
        context_col: "cell_type".into(),
        batch_col: None,
        dose_col: None,
        pert_encoding: scale_model::PertEncoding::OneHot,
        pert_components: vec![],
        pert_features_file: None,
    };
    (contract, groups, controls)
}
