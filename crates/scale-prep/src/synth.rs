//! A synthetic Perturb-seq generator with known ground truth, for tests and scale benchmarks.
//!
//! Model (all randomness from `seed`; natural logs):
//! - gene `g` has a baseline log-share `b_g ~ N(0, base_sdlog²)`, a context offset
//!   `o_cg ~ N(0, 0.3²)`, and a negative-binomial size `r_g ~ LogNormal(ln 3, 0.5²)`;
//!   `share_cg = softmax_g(b_g + o_cg)` sums to 1 in every context `c`;
//! - batch `k` multiplies gene `g` by `exp(β_kg)`, `β_kg ~ N(0, 0.15²)`;
//! - gene programs: `n_programs` sparse loading vectors (3% of genes, `N(0, 0.7²)` each); a non-null
//!   perturbation `p` loads 1–2 programs with weights `~N(1, 0.3²)` (sign random) and has private effects
//!   on 1% of genes (`N(0, 0.5²)`); in context `c` its shared effect is scaled by `s_pc ~ LogNormal(0,
//!   0.25²)` and it gains context-private effects on 0.5% of genes (`N(0, 0.5²)`);
//! - a genetic perturbation knocks its target gene down: `+ln(knockdown)` on that gene;
//! - null perturbations (a `null_fraction` of the genetic and drug perturbations) have no effect at all;
//! - drugs (with `drugs`): effects scaled by a Hill curve `dose^h / (ec50^h + dose^h)` of the cell's dose;
//! - combinations (with `combos`): `A+B` has the sum of A's and B's effects (additive in log space);
//! - cell `i`: context, batch and perturbation uniform (controls: `control_fraction` of cells, labelled
//!   `non-targeting`), library size `L_i ~ LogNormal(ln lib_median, lib_sdlog²)`, and counts
//!   `x_ig ~ NB(mean = L_i · share_cg · exp(β_kg + e_pcg), size = r_g)` (gamma-Poisson).
//!
//! The ground truth `e_pcg` (per perturbation, context and, for drugs, dose) is the log fold change of the
//! expected counts against control cells of the same context and batch at equal library size.
//!
//! Generation is parallel over fixed blocks of cells, each with its own RNG seeded from `(seed, block)`,
//! so the output does not depend on the number of threads; blocks are handed to a sink in order, so
//! memory stays bounded by a few blocks whatever the number of cells.

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Gamma, Normal, Poisson};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use scale_io::{Column, CsrMatrix, Frame};

use crate::PrepError;

/// Label of control cells in `target_gene`.
pub const CONTROL: &str = "non-targeting";
/// Doses (µM) a drug-treated cell is given, uniformly.
pub const DRUG_DOSES: [f64; 4] = [0.01, 0.1, 1.0, 10.0];

#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    pub n_cells: usize,
    pub n_genes: usize,
    /// Genetic (CRISPR-like) perturbations, each targeting a distinct gene.
    pub n_perts: usize,
    pub n_contexts: usize,
    pub n_batches: usize,
    /// Adds `max(1, n_perts / 4)` drug perturbations with doses.
    pub drugs: bool,
    /// Adds `max(1, n_perts / 5)` pairwise combinations of non-null genetic perturbations.
    pub combos: bool,
    pub seed: u64,
    pub control_fraction: f64,
    pub null_fraction: f64,
    /// Factor multiplying the target gene's mean under its (non-null) genetic perturbation.
    pub knockdown: f64,
    pub n_programs: usize,
    pub lib_median: f64,
    pub lib_sdlog: f64,
    pub base_sdlog: f64,
    /// Cells per generation block (the unit of parallelism and of seeding).
    pub block_size: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            n_cells: 10_000,
            n_genes: 2_000,
            n_perts: 50,
            n_contexts: 2,
            n_batches: 2,
            drugs: false,
            combos: false,
            seed: 0,
            control_fraction: 0.1,
            null_fraction: 0.2,
            knockdown: 0.25,
            n_programs: 8,
            lib_median: 2_500.0,
            lib_sdlog: 0.35,
            base_sdlog: 1.5,
            block_size: 2048,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PertKind {
    Control,
    Genetic,
    Drug,
    Combo,
}

impl PertKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            PertKind::Control => "control",
            PertKind::Genetic => "crispr",
            PertKind::Drug => "drug",
            PertKind::Combo => "combo",
        }
    }
}

/// One perturbation of the design (index 0 is the control).
#[derive(Debug, Clone, PartialEq)]
pub struct Perturbation {
    pub name: String,
    pub kind: PertKind,
    pub is_null: bool,
    /// Genetic: the knocked-down gene.
    pub target: Option<usize>,
    /// Combos: the two genetic perturbations combined.
    pub components: Option<(usize, usize)>,
    /// Drugs: Hill curve parameters.
    pub ec50: f64,
    pub hill: f64,
}

impl Perturbation {
    /// Fraction of the full effect at `dose` (1 for non-drugs).
    pub fn dose_scale(&self, dose: f64) -> f64 {
        if self.kind != PertKind::Drug {
            return 1.0;
        }
        let dh = dose.powf(self.hill);
        dh / (self.ec50.powf(self.hill) + dh)
    }
}

/// The drawn parameters: everything needed to generate cells and to report the truth.
pub struct SynthModel {
    pub cfg: SynthConfig,
    pub gene_names: Vec<String>,
    pub context_names: Vec<String>,
    pub batch_names: Vec<String>,
    pub perts: Vec<Perturbation>,
    /// NB size per gene, `[n_genes]`.
    pub nb_size: Vec<f64>,
    /// Baseline share per context and gene, `[n_contexts][n_genes]` (each row sums to 1).
    pub share: Vec<Vec<f64>>,
    /// Batch log factors, `[n_batches][n_genes]`.
    pub batch_log: Vec<Vec<f64>>,
    /// Full-dose log effects, `[n_perts_total][n_contexts]` → sparse (gene, effect), genes increasing.
    pub effects: Vec<Vec<Vec<(u32, f64)>>>,
}

/// Per-cell labels of a generated block.
#[derive(Debug, Clone, PartialEq)]
pub struct CellLabels {
    pub pert: Vec<u32>,
    pub context: Vec<u16>,
    pub batch: Vec<u16>,
    pub dose: Vec<f32>,
    pub library: Vec<f32>,
}

impl CellLabels {
    fn with_capacity(n: usize) -> Self {
        Self {
            pert: Vec::with_capacity(n),
            context: Vec::with_capacity(n),
            batch: Vec::with_capacity(n),
            dose: Vec::with_capacity(n),
            library: Vec::with_capacity(n),
        }
    }

    fn extend(&mut self, o: &CellLabels) {
        self.pert.extend_from_slice(&o.pert);
        self.context.extend_from_slice(&o.context);
        self.batch.extend_from_slice(&o.batch);
        self.dose.extend_from_slice(&o.dose);
        self.library.extend_from_slice(&o.library);
    }

    pub fn len(&self) -> usize {
        self.pert.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pert.is_empty()
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn rng_for(seed: u64, stream: u64, index: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(splitmix64(
        splitmix64(seed ^ stream.wrapping_mul(0xA24B_AED4_963E_E407)) ^ index,
    ))
}

fn normal(mean: f64, sd: f64) -> Normal<f64> {
    Normal::new(mean, sd).expect("finite sd")
}

/// `k` distinct indices of `0..n` (partial Fisher–Yates).
fn sample_distinct(rng: &mut impl Rng, n: usize, k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n) {
        let j = rng.gen_range(i..n);
        idx.swap(i, j);
    }
    idx.truncate(k.min(n));
    idx
}

fn sparse_effects(rng: &mut impl Rng, n_genes: usize, frac: f64, sd: f64) -> Vec<(usize, f64)> {
    let k = ((n_genes as f64 * frac).round() as usize).max(1).min(n_genes);
    let d = normal(0.0, sd);
    sample_distinct(rng, n_genes, k)
        .into_iter()
        .map(|g| (g, d.sample(rng)))
        .collect()
}

impl SynthModel {
    pub fn new(cfg: SynthConfig) -> Result<Self, PrepError> {
        let bad = |option: &str, message: String| PrepError::InvalidOption {
            option: option.into(),
            message,
        };
        if cfg.n_cells == 0 || cfg.n_genes < 2 || cfg.n_contexts == 0 || cfg.n_batches == 0 {
            return Err(bad(
                "cells/genes/contexts/batches",
                format!(
                    "need ≥1 cell, ≥2 genes, ≥1 context, ≥1 batch (got {}, {}, {}, {})",
                    cfg.n_cells, cfg.n_genes, cfg.n_contexts, cfg.n_batches
                ),
            ));
        }
        if cfg.n_perts > cfg.n_genes / 2 {
            return Err(bad(
                "perts",
                format!(
                    "{} genetic perturbations need ≥ {} genes (targets are distinct expressed genes)",
                    cfg.n_perts,
                    2 * cfg.n_perts
                ),
            ));
        }
        if cfg.n_contexts > u16::MAX as usize || cfg.n_batches > u16::MAX as usize {
            return Err(bad("contexts/batches", "at most 65535 each".into()));
        }
        if !(0.0..1.0).contains(&cfg.control_fraction) || !(0.0..=1.0).contains(&cfg.null_fraction) {
            return Err(bad("control_fraction/null_fraction", "must lie in [0, 1)".into()));
        }
        if !(cfg.knockdown > 0.0 && cfg.knockdown <= 1.0) {
            return Err(bad("knockdown", format!("must lie in (0, 1], got {}", cfg.knockdown)));
        }
        if cfg.lib_median.is_nan()
            || cfg.lib_median <= 0.0
            || cfg.lib_sdlog < 0.0
            || cfg.base_sdlog < 0.0
            || cfg.block_size == 0
        {
            return Err(bad(
                "lib_median/lib_sdlog/base_sdlog/block_size",
                "must be positive".into(),
            ));
        }
        let (g, nc, nb) = (cfg.n_genes, cfg.n_contexts, cfg.n_batches);
        let width = (g - 1).to_string().len().max(4);
        let gene_names: Vec<String> = (0..g).map(|i| format!("GENE{i:0width$}")).collect();
        let context_names: Vec<String> = (0..nc).map(|i| format!("context{i}")).collect();
        let batch_names: Vec<String> = (0..nb).map(|i| format!("batch{i}")).collect();

        let mut rng = rng_for(cfg.seed, 1, 0);
        let base: Vec<f64> = (0..g).map(|_| normal(0.0, cfg.base_sdlog).sample(&mut rng)).collect();
        let size_d = normal(3f64.ln(), 0.5);
        let nb_size: Vec<f64> = (0..g).map(|_| size_d.sample(&mut rng).exp()).collect();
        let share: Vec<Vec<f64>> = (0..nc)
            .map(|_| {
                let l: Vec<f64> = base.iter().map(|b| b + normal(0.0, 0.3).sample(&mut rng)).collect();
                let mx = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = l.iter().map(|v| (v - mx).exp()).collect();
                let s: f64 = e.iter().sum();
                e.into_iter().map(|v| v / s).collect()
            })
            .collect();
        let batch_log: Vec<Vec<f64>> = (0..nb)
            .map(|_| (0..g).map(|_| normal(0.0, 0.15).sample(&mut rng)).collect())
            .collect();
        let programs: Vec<Vec<(usize, f64)>> = (0..cfg.n_programs.max(1))
            .map(|_| sparse_effects(&mut rng, g, 0.03, 0.7))
            .collect();

        // targets: distinct genes from the better-expressed half, so knock-downs are measurable
        let mut by_expr: Vec<usize> = (0..g).collect();
        by_expr.sort_by(|&a, &b| base[b].total_cmp(&base[a]));
        let upper = &by_expr[..g / 2];
        let targets: Vec<usize> = sample_distinct(&mut rng, upper.len(), cfg.n_perts)
            .into_iter()
            .map(|i| upper[i])
            .collect();

        let mut perts = vec![Perturbation {
            name: CONTROL.into(),
            kind: PertKind::Control,
            is_null: true,
            target: None,
            components: None,
            ec50: 0.0,
            hill: 0.0,
        }];
        for &t in &targets {
            perts.push(Perturbation {
                name: gene_names[t].clone(),
                kind: PertKind::Genetic,
                is_null: rng.gen::<f64>() < cfg.null_fraction,
                target: Some(t),
                components: None,
                ec50: 0.0,
                hill: 0.0,
            });
        }
        if cfg.drugs {
            for i in 0..(cfg.n_perts / 4).max(1) {
                perts.push(Perturbation {
                    name: format!("DRUG{i:03}"),
                    kind: PertKind::Drug,
                    is_null: rng.gen::<f64>() < cfg.null_fraction,
                    target: None,
                    components: None,
                    // EC50 log-uniform in [0.03, 3] µM so the dose grid spans the curve
                    ec50: 10f64.powf(rng.gen_range(-1.5..0.5)),
                    hill: rng.gen_range(0.8..2.5),
                });
            }
        }
        if cfg.combos {
            let live: Vec<usize> = (1..=cfg.n_perts).filter(|&p| !perts[p].is_null).collect();
            if live.len() >= 2 {
                let mut seen = std::collections::HashSet::new();
                let want = (cfg.n_perts / 5).max(1);
                let mut tries = 0;
                while seen.len() < want && tries < 100 * want {
                    tries += 1;
                    let pick = sample_distinct(&mut rng, live.len(), 2);
                    let (a, b) = (live[pick[0].min(pick[1])], live[pick[0].max(pick[1])]);
                    if seen.insert((a, b)) {
                        perts.push(Perturbation {
                            name: format!("{}+{}", perts[a].name, perts[b].name),
                            kind: PertKind::Combo,
                            is_null: false,
                            target: None,
                            components: Some((a, b)),
                            ec50: 0.0,
                            hill: 0.0,
                        });
                    }
                }
            }
        }

        // effects of single perturbations, then combos as sums
        let mut effects: Vec<Vec<Vec<(u32, f64)>>> = Vec::with_capacity(perts.len());
        for p in &perts {
            let mut per_ctx = vec![Vec::new(); nc];
            if p.kind == PertKind::Control || p.kind == PertKind::Combo {
                effects.push(per_ctx);
                continue;
            }
            // draw even for null perturbations so that flipping one flag does not reshuffle the rest
            let mut shared = vec![0f64; g];
            let n_prog = 1 + (rng.gen::<f64>() < 0.5) as usize;
            for k in sample_distinct(&mut rng, programs.len(), n_prog) {
                let w = normal(1.0, 0.3).sample(&mut rng) * if rng.gen::<bool>() { 1.0 } else { -1.0 };
                for &(gi, v) in &programs[k] {
                    shared[gi] += w * v;
                }
            }
            for (gi, v) in sparse_effects(&mut rng, g, 0.01, 0.5) {
                shared[gi] += v;
            }
            for slot in per_ctx.iter_mut() {
                let scale = normal(0.0, 0.25).sample(&mut rng).exp();
                let mut e: Vec<f64> = shared.iter().map(|v| v * scale).collect();
                for (gi, v) in sparse_effects(&mut rng, g, 0.005, 0.5) {
                    e[gi] += v;
                }
                if let Some(t) = p.target {
                    e[t] += cfg.knockdown.ln();
                }
                if !p.is_null {
                    *slot = e
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| **v != 0.0)
                        .map(|(gi, v)| (gi as u32, *v))
                        .collect();
                }
            }
            effects.push(per_ctx);
        }
        for pi in 0..perts.len() {
            if let Some((a, b)) = perts[pi].components {
                let summed: Vec<Vec<(u32, f64)>> = (0..nc)
                    .map(|c| {
                        let mut dense = vec![0f64; g];
                        for &(gi, v) in effects[a][c].iter().chain(&effects[b][c]) {
                            dense[gi as usize] += v;
                        }
                        dense
                            .iter()
                            .enumerate()
                            .filter(|(_, v)| **v != 0.0)
                            .map(|(gi, v)| (gi as u32, *v))
                            .collect()
                    })
                    .collect();
                effects[pi] = summed;
            }
        }
        Ok(Self {
            cfg,
            gene_names,
            context_names,
            batch_names,
            perts,
            nb_size,
            share,
            batch_log,
            effects,
        })
    }

    pub fn n_blocks(&self) -> usize {
        self.cfg.n_cells.div_ceil(self.cfg.block_size)
    }

    /// Cells `[block·block_size, …)` as raw counts (integer-valued f32, CSR with sorted indices).
    pub fn generate_block(&self, block: usize) -> (CsrMatrix, CellLabels) {
        let cfg = &self.cfg;
        let start = block * cfg.block_size;
        let n = cfg.block_size.min(cfg.n_cells.saturating_sub(start));
        let g = cfg.n_genes;
        let mut rng = rng_for(cfg.seed, 2, block as u64);
        let mut x = CsrMatrix::empty(g);
        x.indptr.reserve(n);
        let mut labels = CellLabels::with_capacity(n);
        let lib_d = normal(cfg.lib_median.ln(), cfg.lib_sdlog.max(1e-12));
        let n_nonctrl = self.perts.len() - 1;
        let mut mu = vec![0f64; g];
        let (mut cols, mut vals) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let c = rng.gen_range(0..cfg.n_contexts);
            let b = rng.gen_range(0..cfg.n_batches);
            let p = if n_nonctrl == 0 || rng.gen::<f64>() < cfg.control_fraction {
                0
            } else {
                1 + rng.gen_range(0..n_nonctrl)
            };
            let pert = &self.perts[p];
            let dose = if pert.kind == PertKind::Drug {
                DRUG_DOSES[rng.gen_range(0..DRUG_DOSES.len())]
            } else {
                0.0
            };
            let lib = if cfg.lib_sdlog > 0.0 {
                lib_d.sample(&mut rng).exp()
            } else {
                cfg.lib_median
            };
            let (share, blog) = (&self.share[c], &self.batch_log[b]);
            for ((m, s), bl) in mu.iter_mut().zip(share).zip(blog) {
                *m = lib * s * bl.exp();
            }
            let scale = pert.dose_scale(dose);
            for &(gi, e) in &self.effects[p][c] {
                mu[gi as usize] *= (e * scale).exp();
            }
            cols.clear();
            vals.clear();
            for (gi, (&m, &r)) in mu.iter().zip(&self.nb_size).enumerate() {
                let k = sample_nb(&mut rng, m, r);
                if k > 0 {
                    cols.push(gi as u32);
                    vals.push(k as f32);
                }
            }
            x.push_row(&cols, &vals);
            labels.pert.push(p as u32);
            labels.context.push(c as u16);
            labels.batch.push(b as u16);
            labels.dose.push(dose as f32);
            labels.library.push(lib as f32);
        }
        (x, labels)
    }

    /// Generates every cell, handing row blocks to `sink` in order; blocks are generated in parallel
    /// in windows of a few per thread. `progress` receives the number of cells done so far.
    pub fn generate<E>(
        &self,
        mut sink: impl FnMut(CsrMatrix) -> Result<(), E>,
        mut progress: impl FnMut(usize),
    ) -> Result<CellLabels, E> {
        let nblocks = self.n_blocks();
        let window = (rayon::current_num_threads() * 2).max(2);
        let mut labels = CellLabels::with_capacity(self.cfg.n_cells);
        let mut done = 0;
        for w0 in (0..nblocks).step_by(window) {
            let blocks: Vec<(CsrMatrix, CellLabels)> = (w0..(w0 + window).min(nblocks))
                .into_par_iter()
                .map(|b| self.generate_block(b))
                .collect();
            for (x, l) in blocks {
                done += x.n_rows;
                labels.extend(&l);
                sink(x)?;
                progress(done);
            }
        }
        Ok(labels)
    }

    /// `var`: gene names, NB size, mean baseline share and whether the gene is a perturbation target.
    pub fn var_frame(&self) -> Frame {
        let mut var = Frame::new(self.gene_names.clone());
        let g = self.cfg.n_genes;
        let nc = self.cfg.n_contexts as f64;
        let mean_share: Vec<f64> = (0..g)
            .map(|j| self.share.iter().map(|s| s[j]).sum::<f64>() / nc)
            .collect();
        let mut is_target = vec![false; g];
        for p in &self.perts {
            if let Some(t) = p.target {
                is_target[t] = true;
            }
        }
        var.set_column("baseline_share", Column::Float(mean_share));
        var.set_column("nb_size", Column::Float(self.nb_size.clone()));
        var.set_column("is_target", Column::Bool(is_target));
        var
    }

    /// `obs` for the generated labels: `target_gene` (perturbation, `non-targeting` for controls),
    /// `perturbation_type`, `cell_type` (context), `gem_group` (batch), `dose` (µM, 0 unless a drug),
    /// `library_size` (the drawn expected total count).
    pub fn obs_frame(&self, labels: &CellLabels) -> Frame {
        let width = self.cfg.n_cells.saturating_sub(1).to_string().len();
        let index: Vec<String> = (0..labels.len()).map(|i| format!("cell{i:0width$}")).collect();
        let mut obs = Frame::new(index);
        let cat = |codes: Vec<i32>, categories: Vec<String>| Column::Categorical {
            codes,
            categories,
            ordered: false,
        };
        obs.set_column(
            "target_gene",
            cat(
                labels.pert.iter().map(|&p| p as i32).collect(),
                self.perts.iter().map(|p| p.name.clone()).collect(),
            ),
        );
        let kinds = [PertKind::Control, PertKind::Genetic, PertKind::Drug, PertKind::Combo];
        obs.set_column(
            "perturbation_type",
            cat(
                labels
                    .pert
                    .iter()
                    .map(|&p| {
                        kinds
                            .iter()
                            .position(|k| *k == self.perts[p as usize].kind)
                            .unwrap_or(0) as i32
                    })
                    .collect(),
                kinds.iter().map(|k| k.as_str().to_string()).collect(),
            ),
        );
        obs.set_column(
            "cell_type",
            cat(
                labels.context.iter().map(|&c| c as i32).collect(),
                self.context_names.clone(),
            ),
        );
        obs.set_column(
            "gem_group",
            cat(
                labels.batch.iter().map(|&b| b as i32).collect(),
                self.batch_names.clone(),
            ),
        );
        if self.cfg.drugs {
            obs.set_column("dose", Column::Float(labels.dose.iter().map(|&d| d as f64).collect()));
        }
        obs.set_column(
            "library_size",
            Column::Float(labels.library.iter().map(|&l| l as f64).collect()),
        );
        obs
    }

    /// The perturbation table as CSV text (name, type, null flag, target, components, EC50, Hill).
    pub fn perturbations_csv(&self) -> String {
        let mut s = String::from("perturbation,type,is_null,target_gene,components,ec50_uM,hill\n");
        for p in &self.perts {
            let comp = p
                .components
                .map(|(a, b)| format!("{}+{}", self.perts[a].name, self.perts[b].name))
                .unwrap_or_default();
            let target = p.target.map(|t| self.gene_names[t].clone()).unwrap_or_default();
            let (ec50, hill) = if p.kind == PertKind::Drug {
                (format!("{}", p.ec50), format!("{}", p.hill))
            } else {
                (String::new(), String::new())
            };
            s.push_str(&format!(
                "{},{},{},{target},{comp},{ec50},{hill}\n",
                p.name,
                p.kind.as_str(),
                p.is_null
            ));
        }
        s
    }

    /// Log fold effect of perturbation `p` in context `c` at `dose` (ignored unless a drug), dense `[n_genes]`.
    pub fn effect(&self, p: usize, c: usize, dose: f64) -> Vec<f64> {
        let mut e = vec![0f64; self.cfg.n_genes];
        let s = self.perts[p].dose_scale(dose);
        for &(g, v) in &self.effects[p][c] {
            e[g as usize] = v * s;
        }
        e
    }

    /// Writes the ground truth: one row per non-zero effect, `perturbation,context,dose,gene,log_fold_effect`
    /// (natural log; genes not listed have effect 0; drugs have one row per dose of [`DRUG_DOSES`],
    /// other perturbations dose 0).
    pub fn write_truth(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(w, "perturbation,context,dose,gene,log_fold_effect")?;
        for (pi, p) in self.perts.iter().enumerate() {
            let doses: &[f64] = if p.kind == PertKind::Drug { &DRUG_DOSES } else { &[0.0] };
            for (c, cname) in self.context_names.iter().enumerate() {
                for &d in doses {
                    let s = p.dose_scale(d);
                    for &(g, v) in &self.effects[pi][c] {
                        writeln!(w, "{},{cname},{d},{},{:.6}", p.name, self.gene_names[g as usize], v * s)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// One negative-binomial draw with mean `mu` and size `r` (variance `mu + mu²/r`).
///
/// Inverse CDF with one uniform for moderate means (most draws are a single comparison with P(0));
/// gamma-Poisson for large means where the walk would be long.
pub fn sample_nb(rng: &mut impl Rng, mu: f64, r: f64) -> u32 {
    if mu.is_nan() || mu <= 0.0 {
        return 0;
    }
    if mu > 64.0 {
        let lambda = Gamma::new(r, mu / r).map(|d| d.sample(rng)).unwrap_or(mu);
        return if lambda > 0.0 {
            Poisson::new(lambda).map(|d| d.sample(rng) as u32).unwrap_or(0)
        } else {
            0
        };
    }
    let u: f64 = rng.gen();
    let mut p = (-r * (mu / r).ln_1p()).exp();
    let mut cdf = p;
    if u < cdf {
        return 0;
    }
    let q = mu / (r + mu);
    let mut k = 0u32;
    // the walk ends when the CDF passes u; the cap only guards rounding at u ≈ 1
    while cdf <= u && k < 100_000 {
        p *= (k as f64 + r) / (k as f64 + 1.0) * q;
        k += 1;
        cdf += p;
        if p == 0.0 {
            break;
        }
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nb_moments() {
        let mut rng = rng_for(7, 0, 0);
        for &(mu, r) in &[(0.05, 2.0), (1.5, 0.5), (10.0, 3.0), (200.0, 5.0)] {
            let n = 200_000;
            let xs: Vec<f64> = (0..n).map(|_| sample_nb(&mut rng, mu, r) as f64).collect();
            let m = xs.iter().sum::<f64>() / n as f64;
            let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1) as f64;
            let want_v = mu + mu * mu / r;
            assert!(
                (m - mu).abs() < 4.0 * (want_v / n as f64).sqrt() + 1e-9,
                "mean {m} vs {mu}"
            );
            assert!((v / want_v - 1.0).abs() < 0.05, "var {v} vs {want_v} (mu {mu}, r {r})");
        }
    }

    #[test]
    fn hill_curve() {
        let p = Perturbation {
            name: "d".into(),
            kind: PertKind::Drug,
            is_null: false,
            target: None,
            components: None,
            ec50: 1.0,
            hill: 2.0,
        };
        assert!((p.dose_scale(1.0) - 0.5).abs() < 1e-12);
        assert!(p.dose_scale(0.1) < p.dose_scale(10.0));
        assert_eq!(p.dose_scale(0.0), 0.0);
    }

    #[test]
    fn rejects_bad_configs() {
        let c = SynthConfig {
            n_perts: 600,
            n_genes: 1000,
            ..Default::default()
        };
        assert!(SynthModel::new(c).is_err());
        let c = SynthConfig {
            knockdown: 0.0,
            ..Default::default()
        };
        assert!(SynthModel::new(c).is_err());
    }
}
