//! Prediction from a trained run directory: sample control sets, transport them, return cells.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use scale_model::burn::tensor::{Device, Int, Tensor, TensorData};
use scale_model::{
    transport_sets, transport_sets_fused_encoded, weights, Conditions, FusedTransport, PertEncoder, TransportConfig,
    TransportModel,
};

use crate::config::TrainConfig;
use crate::contract::DataContract;
use crate::trainer::{checkpoint_dir, files, read_toml};
use crate::TrainError;

/// One prediction request: `n_cells` cells of `pert` in `context`.
#[derive(Debug, Clone)]
pub struct PredictRequest {
    /// Perturbation name (may be a combination "A+B" or, with a feature table, unseen in training).
    pub pert: String,
    /// Context name (one of the run's contexts).
    pub context: String,
    /// Batch name, required by models trained with a batch embedding.
    pub batch: Option<String>,
    /// Dose (in the units of the training data's dose column), required by models trained with a
    /// dose embedding and refused by the others (it would be ignored).
    pub dose: Option<f32>,
    /// Cells to predict.
    pub n_cells: usize,
}

/// A control pool: dense cells [n, G] of one context (and optionally batch).
#[derive(Debug, Clone)]
pub struct ControlPool {
    /// Context name.
    pub context: String,
    /// Batch name, if pools are per batch.
    pub batch: Option<String>,
    /// Cells, row-major [n, G].
    pub cells: Vec<f32>,
}

/// A trained model ready to predict.
pub struct Predictor {
    tcfg: TransportConfig,
    cfg: TrainConfig,
    contract: DataContract,
    encoder: PertEncoder,
    model: TransportModel,
    /// The fused CPU engine (built when the device is the CPU).
    fused: Option<FusedTransport>,
    device: Device,
    run_dir: PathBuf,
    /// Which engine runs the per-cell network on the CPU ([`Engine::Fused`] by default there; other
    /// devices always use burn).
    pub engine: Engine,
    /// Euler steps set by [`Predictor::set_euler_steps`] (the run's own setting otherwise).
    steps_override: Option<usize>,
    /// Sets per forward pass.
    pub sets_per_pass: usize,
    /// How predicted values below one count of the source control cell are put back on the count
    /// lattice (see [`CountRounding`]); `Stochastic` by default. Cells not made of counts (other
    /// spaces, continuous data) are never rounded.
    pub count_rounding: CountRounding,
}

/// Putting sub-count predictions back on the count lattice. Real cells hold a gene at zero or at
/// one count or more, never in between; a model that moves zeros by tiny amounts lifts every zero
/// of a set above the zero tie block, and the Wilcoxon test then calls the gene differentially
/// expressed (on the demo split, 60-215 false DE genes per perturbation against 0-2 real ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountRounding {
    /// Keep the values as the model returns them.
    Off,
    /// Below half a count: 0 (deterministic; lowers the mean of low genes).
    Half,
    /// A value `v` below one count `u` becomes `u` with probability `v / u`, otherwise 0: the mean
    /// is kept in expectation and the zeros are real zeros.
    Stochastic,
}

/// The implementation of the forward pass used by [`Predictor`] on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The fused CPU engine (`scale_model::fused`): a few sets per thread through the whole network.
    Fused,
    /// burn's operators, as in training.
    Burn,
}

impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fused" => Ok(Self::Fused),
            "burn" => Ok(Self::Burn),
            _ => Err(format!("engine {s:?}: expected fused or burn")),
        }
    }
}

impl std::str::FromStr for CountRounding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "half" => Ok(Self::Half),
            "stochastic" => Ok(Self::Stochastic),
            _ => Err(format!("count rounding {s:?}: expected stochastic, half or off")),
        }
    }
}

impl Predictor {
    /// Loads the last checkpoint of `run_dir`.
    pub fn open(run_dir: &Path, device: &Device) -> Result<Self, TrainError> {
        let cfg = TrainConfig::from_file(&run_dir.join(files::CONFIG))?;
        let tcfg: TransportConfig = read_toml(&run_dir.join(files::MODEL))?;
        let contract = DataContract::read(&run_dir.join(files::CONTRACT))?;
        let encoder = contract.pert_encoder(run_dir)?;
        let device = device.clone().without_autodiff();
        let ckpt = checkpoint_dir(run_dir)?;
        let model = weights::load(tcfg.init(&device)?, &ckpt.join(files::WEIGHTS))?;
        let fused = if device == Device::flex() {
            Some(model.fused()?)
        } else {
            None
        };
        Ok(Self {
            tcfg,
            cfg,
            contract,
            encoder,
            model,
            fused,
            device,
            run_dir: run_dir.to_path_buf(),
            engine: Engine::Fused,
            steps_override: None,
            sets_per_pass: 32,
            count_rounding: CountRounding::Stochastic,
        })
    }

    /// The run's data contract.
    pub fn contract(&self) -> &DataContract {
        &self.contract
    }

    /// The run directory.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Cells per predicted set (the training set size).
    pub fn set_size(&self) -> usize {
        self.cfg.data.set_size
    }

    /// Whether the model was trained with a dose embedding (requests then need a dose).
    pub fn uses_dose(&self) -> bool {
        self.tcfg.model.use_dose
    }

    /// Euler steps used.
    pub fn euler_steps(&self) -> usize {
        self.steps_override
            .unwrap_or_else(|| self.cfg.transport.inference_steps())
    }

    /// Integrates with `k` Euler steps instead of the run's `transport.euler_steps` (endpoint runs
    /// only: a direct-map run has no path to integrate along).
    pub fn set_euler_steps(&mut self, k: usize) -> Result<(), TrainError> {
        use crate::config::Mode;
        if k == 0 {
            return Err(TrainError::Contract(
                "the number of Euler steps must be at least 1".into(),
            ));
        }
        if self.cfg.transport.mode == Mode::Direct && k != 1 {
            return Err(TrainError::Contract(format!(
                "{k} Euler steps asked, but the run was trained as a direct map (transport.mode = \"direct\"), \
                 which predicts in one step only"
            )));
        }
        self.steps_override = Some(k);
        Ok(())
    }

    /// Predicts every request from control cells of its context (and batch, when the pools are
    /// per batch). Returns one row-major [n_cells, G] block per request. Control sets are drawn
    /// without replacement when the pool is large enough, reproducibly from `seed`.
    pub fn predict(
        &self,
        requests: &[PredictRequest],
        pools: &[ControlPool],
        seed: u64,
    ) -> Result<Vec<Vec<f32>>, TrainError> {
        let g = self.tcfg.dims.n_genes;
        let mut flat = Vec::new();
        self.predict_into(requests, pools, seed, &mut flat)?;
        let mut rest = &flat[..];
        Ok(requests
            .iter()
            .map(|r| {
                let (head, tail) = rest.split_at(r.n_cells * g);
                rest = tail;
                head.to_vec()
            })
            .collect())
    }

    /// [`Predictor::predict`] appending the predicted rows of every request, in request order, to
    /// `out` (row-major, `G` values per cell): no per-request copies, so a caller that writes one
    /// matrix (the CLI) can reserve it once.
    pub fn predict_into(
        &self,
        requests: &[PredictRequest],
        pools: &[ControlPool],
        seed: u64,
        out: &mut Vec<f32>,
    ) -> Result<(), TrainError> {
        let g = self.tcfg.dims.n_genes;
        let s = self.set_size();
        let p = self.encoder.dim();
        // Resolve every request before any compute, so a bad name fails fast.
        struct Job {
            req: usize,
            pool: usize,
            pert: Vec<f32>,
            context: i64,
            batch: i64,
            dose: f32,
        }
        let mut jobs = Vec::new();
        for (ri, r) in requests.iter().enumerate() {
            let mut pert = vec![0.0f32; p];
            self.encoder
                .encode_into(&r.pert, &self.contract.control_pert, &mut pert)?;
            let context = self.contract.context_index(&r.context)? as i64;
            let batch =
                if self.tcfg.model.use_batch {
                    let name = r.batch.as_deref().ok_or_else(|| {
                        TrainError::Contract(format!(
                            "the run was trained with a batch embedding; request {:?} in {:?} names no batch",
                            r.pert, r.context
                        ))
                    })?;
                    self.contract.batches.iter().position(|b| b == name).ok_or_else(|| {
                        TrainError::Contract(format!("batch {name:?} is not one of the run's batches"))
                    })? as i64
                } else {
                    0
                };
            let dose = match (r.dose, self.tcfg.model.use_dose) {
                (Some(d), true) if d.is_finite() && d >= 0.0 => d,
                (Some(d), true) => {
                    return Err(TrainError::Contract(format!(
                        "request {:?} in {:?}: dose {d} is not a number >= 0",
                        r.pert, r.context
                    )))
                }
                (None, true) => {
                    return Err(TrainError::Contract(format!(
                        "the run was trained with doses; request {:?} in {:?} names no dose",
                        r.pert, r.context
                    )))
                }
                (Some(d), false) => {
                    return Err(TrainError::Contract(format!(
                        "request {:?} in {:?} names dose {d}, but the run has no dose embedding (it would be ignored)",
                        r.pert, r.context
                    )))
                }
                (None, false) => 0.0,
            };
            let pool = pools
                .iter()
                .position(|c| c.context == r.context && (c.batch.is_none() || c.batch == r.batch))
                .ok_or_else(|| TrainError::Contract(format!("no control cells for context {:?}", r.context)))?;
            if pools[pool].cells.is_empty() || pools[pool].cells.len() % g != 0 {
                return Err(TrainError::Data(format!(
                    "control pool of {:?} is not a non-empty [n, {g}] matrix",
                    pools[pool].context
                )));
            }
            for _ in 0..r.n_cells.div_ceil(s) {
                jobs.push(Job {
                    req: ri,
                    pool,
                    pert: pert.clone(),
                    context,
                    batch,
                    dose,
                });
            }
        }
        // Per control cell, the values of one and half a count in its library (zero where the cell
        // or the space is not made of counts, which turns the rounding off for it).
        let rounding = self.count_rounding;
        let levels: Vec<Vec<CountLevels>> = pools
            .iter()
            .map(|pool| {
                use rayon::prelude::*;
                pool.cells
                    .par_chunks_exact(g)
                    .map(|row| match rounding {
                        CountRounding::Off => CountLevels { one: 0.0, half: 0.0 },
                        _ => count_levels(row, &self.contract.space),
                    })
                    .collect()
            })
            .collect();
        use rayon::prelude::*;
        out.reserve(requests.iter().map(|r| r.n_cells * g).sum());
        let start_len = out.len();
        let mut remaining: Vec<usize> = requests.iter().map(|r| r.n_cells).collect();
        let mut rng = StdRng::seed_from_u64(seed);
        // A stream of its own for the rounding, so that every rounding mode draws the same control
        // cells and their predictions differ by the rounding alone.
        let mut round_stream = RoundingStream::new(seed ^ 0x9E37_79B9_7F4A_7C15);
        let steps = self.euler_steps();
        // reused across passes: no allocation (and no page faults) per pass
        let mut z0: Vec<f32> = Vec::new();
        let mut scratch: Vec<f32> = Vec::new();
        let per_pass = self.sets_per_pass.max(1);
        // with the fused engine, each control cell is encoded once (see `EncoderCache`)
        let mut fused = match (&self.fused, self.engine) {
            (Some(fused), Engine::Fused) => Some((fused, EncoderCache::new(pools, g, fused.hidden()))),
            _ => None,
        };
        let mut encoded0: Vec<f32> = Vec::new();
        // time inside the model's forward passes alone (what STATE's inference timing counts)
        let mut forward_s = 0.0f64;
        let forwarded = jobs.len() * s;
        // On an error, `out` goes back to what the caller passed in (no partial request).
        let mut passes = || -> Result<(), TrainError> {
            for chunk in jobs.chunks(per_pass) {
                let b = chunk.len();
                // every row is overwritten by a control cell below
                z0.resize(b * s * g, 0.0);
                // the control cell each row is transported from (the model is equivariant: output row i is
                // control row i moved): drawn in order from the one seeded stream, copied in parallel
                let rows: Vec<(usize, usize)> = chunk
                    .iter()
                    .flat_map(|job| {
                        let n = pools[job.pool].cells.len() / g;
                        sample_rows(n, s, &mut rng).into_iter().map(|row| (job.pool, row))
                    })
                    .collect();
                z0.par_chunks_exact_mut(g).zip(&rows).for_each(|(dst, &(pool, row))| {
                    dst.copy_from_slice(&pools[pool].cells[row * g..(row + 1) * g]);
                });
                let source: Vec<CountLevels> = rows.iter().map(|&(pool, row)| levels[pool][row]).collect();
                let pert: Vec<f32> = chunk.iter().flat_map(|j| j.pert.iter().copied()).collect();
                let ints = |v: Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(v, [b]), &self.device);
                let cond = Conditions {
                    pert: Tensor::<2>::from_data(TensorData::new(pert, [b, p]), &self.device),
                    context: ints(chunk.iter().map(|j| j.context).collect()),
                    batch: self
                        .tcfg
                        .model
                        .use_batch
                        .then(|| ints(chunk.iter().map(|j| j.batch).collect())),
                    dose: self.tcfg.model.use_dose.then(|| {
                        let doses: Vec<f32> = chunk.iter().map(|j| j.dose).collect();
                        Tensor::<1>::from_data(TensorData::new(doses, [b]), &self.device)
                    }),
                };
                let forward_start = std::time::Instant::now();
                match &mut fused {
                    Some((fused, cache)) => {
                        cache.gather(fused, pools, g, &rows, &mut encoded0);
                        transport_sets_fused_encoded(
                            &self.model,
                            fused,
                            &mut z0,
                            &encoded0,
                            &mut scratch,
                            s,
                            &cond,
                            steps,
                        )?
                    }
                    None => {
                        let input = Tensor::<3>::from_data(TensorData::new(z0.clone(), [b, s, g]), &self.device);
                        z0 = transport_sets(&self.model, input, &cond, steps)?
                            .into_data()
                            .try_to_vec::<f32>()
                            .map_err(|e| TrainError::Data(format!("{e:?}")))?;
                    }
                }
                forward_s += forward_start.elapsed().as_secs_f64();
                if rounding != CountRounding::Off {
                    round_stream.round_cells(&mut z0, g, &source, rounding);
                }
                // jobs of a request are consecutive, so appending in job order is request order
                for (bi, job) in chunk.iter().enumerate() {
                    let take = remaining[job.req].min(s);
                    remaining[job.req] -= take;
                    out.extend_from_slice(&z0[bi * s * g..(bi * s + take) * g]);
                }
            }
            Ok(())
        };
        if let Err(e) = passes() {
            out.truncate(start_len);
            return Err(e);
        }
        tracing::info!(
            cells = forwarded,
            seconds = forward_s,
            cells_per_s = forwarded as f64 / forward_s.max(1e-9),
            engine = ?self.engine,
            "forward passes"
        );
        Ok(())
    }
}

/// The fused engine's encoder output per control cell, computed the first time a set draws the cell.
/// The encoder sees a cell alone (not its set, the time or the condition), so every later set that
/// draws it reuses the row: the cells predicted usually outnumber the controls several times over.
struct EncoderCache {
    /// Width D of an encoded row.
    d: usize,
    /// Per pool, [n, D] row-major; row i is valid when `done[pool][i]`.
    rows: Vec<Vec<f32>>,
    done: Vec<Vec<bool>>,
    /// Reused buffers: the cells encoded in one call and their rows.
    fresh_cells: Vec<f32>,
    fresh_rows: Vec<f32>,
}

impl EncoderCache {
    fn new(pools: &[ControlPool], g: usize, d: usize) -> EncoderCache {
        EncoderCache {
            d,
            rows: pools.iter().map(|p| vec![0.0; p.cells.len() / g * d]).collect(),
            done: pools.iter().map(|p| vec![false; p.cells.len() / g]).collect(),
            fresh_cells: Vec::new(),
            fresh_rows: Vec::new(),
        }
    }

    /// The encoded rows of the drawn cells `drawn` (pool, row) into `out` [len, D], encoding those
    /// not drawn before (each once).
    fn gather(
        &mut self,
        fused: &FusedTransport,
        pools: &[ControlPool],
        g: usize,
        drawn: &[(usize, usize)],
        out: &mut Vec<f32>,
    ) {
        use rayon::prelude::*;
        let d = self.d;
        let mut fresh: Vec<(usize, usize)> = drawn.iter().copied().filter(|&(p, r)| !self.done[p][r]).collect();
        fresh.sort_unstable();
        fresh.dedup();
        if !fresh.is_empty() {
            self.fresh_cells.resize(fresh.len() * g, 0.0);
            self.fresh_cells
                .par_chunks_exact_mut(g)
                .zip(&fresh)
                .for_each(|(dst, &(p, r))| dst.copy_from_slice(&pools[p].cells[r * g..(r + 1) * g]));
            self.fresh_rows.resize(fresh.len() * d, 0.0);
            fused.encode(&self.fresh_cells, &mut self.fresh_rows);
            for (&(p, r), e) in fresh.iter().zip(self.fresh_rows.chunks_exact(d)) {
                self.rows[p][r * d..(r + 1) * d].copy_from_slice(e);
                self.done[p][r] = true;
            }
        }
        out.resize(drawn.len() * d, 0.0);
        for (dst, &(p, r)) in out.chunks_exact_mut(d).zip(drawn) {
            dst.copy_from_slice(&self.rows[p][r * d..(r + 1) * d]);
        }
    }
}

/// One count, and half a count, in the library of a cell like `control`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CountLevels {
    /// Value of one count (0: no rounding for this cell).
    pub one: f32,
    /// Value of half a count.
    pub half: f32,
}

/// [`CountLevels`] of a cell like `control`: in log1p space one count is its smallest positive
/// value (`log1p(s)`, `s` the cell's size factor) and half a count `log1p(s / 2)`; in raw counts 1
/// and 0.5. The cell must show that it is made of counts: every positive value `v` must be
/// `log1p(k s)` for a whole `k` (raw counts: whole values), otherwise (continuous or scaled data,
/// or no gene at exactly one count) the levels are zero and the cell's predictions are not rounded.
pub fn count_levels(control: &[f32], space: &str) -> CountLevels {
    let none = CountLevels { one: 0.0, half: 0.0 };
    // whole within float32 rounding of the stored values (relative 1e-4 covers expm1 of a float32)
    let whole = |k: f64| (k - k.round()).abs() <= 1e-2 + 1e-4 * k && k.round() >= 1.0;
    match space {
        "raw-counts" => {
            if control.iter().all(|&v| v == 0.0 || whole(v as f64)) {
                CountLevels { one: 1.0, half: 0.5 }
            } else {
                none
            }
        }
        "log1p" => {
            let min_pos = control
                .iter()
                .copied()
                .filter(|&v| v > 0.0)
                .fold(f32::INFINITY, f32::min);
            if !min_pos.is_finite() {
                return none;
            }
            let size = (min_pos as f64).exp_m1();
            let on_lattice = control.iter().all(|&v| v == 0.0 || whole((v as f64).exp_m1() / size));
            if on_lattice {
                CountLevels {
                    one: min_pos,
                    half: (0.5 * size).ln_1p() as f32,
                }
            } else {
                none
            }
        }
        _ => none,
    }
}

/// The rounding's random stream (ChaCha12, the generator behind `StdRng`, which is seeded the same
/// way). Cells are rounded in parallel, each from its own position in the one stream: a cell takes
/// one draw per value strictly between 0 and one count, so the position of cell `i` is the number of
/// such values before it. The result is the same as rounding the cells one after another from one
/// generator, whatever the number of threads.
struct RoundingStream {
    rng: rand_chacha::ChaCha12Rng,
    /// Words (draws) used so far.
    pos: u128,
}

impl RoundingStream {
    fn new(seed: u64) -> Self {
        RoundingStream {
            rng: rand_chacha::ChaCha12Rng::seed_from_u64(seed),
            pos: 0,
        }
    }

    /// Rounds the cells of `host` (`g` values each, cell `i` like control `levels[i]`).
    fn round_cells(&mut self, host: &mut [f32], g: usize, levels: &[CountLevels], how: CountRounding) {
        use rayon::prelude::*;
        let cells = host.par_chunks_exact_mut(g).zip(levels.par_iter());
        match how {
            CountRounding::Off => return,
            // takes no draws
            CountRounding::Half => return cells.for_each(|(cell, &level)| round_half(cell, level)),
            CountRounding::Stochastic => {}
        }
        let draws: Vec<u128> = host
            .par_chunks_exact(g)
            .zip(levels.par_iter())
            .map(|(cell, level)| cell.iter().filter(|&&v| v > 0.0 && v < level.one).count() as u128)
            .collect();
        let mut starts = Vec::with_capacity(draws.len());
        for d in &draws {
            starts.push(self.pos);
            self.pos += d;
        }
        let base = &self.rng;
        host.par_chunks_exact_mut(g)
            .zip(levels.par_iter())
            .zip(starts.par_iter().zip(draws.par_iter()))
            .for_each_init(Vec::new, |words, ((cell, &level), (&start, &n))| {
                if level.one <= 0.0 {
                    return; // not made of counts: left alone (and no draws counted)
                }
                // (with no draws, values at or below 0 still become 0)
                // The cell's draws in one go, then a loop without data-dependent branches (the
                // coin flips mispredicted half the time, which made rounding a tenth of `predict`).
                let mut rng = base.clone();
                rng.set_word_pos(start);
                // one spare word: read past the last draw by values that take none
                words.clear();
                words.resize(n as usize + 1, 0);
                rng.fill(&mut words[..n as usize]); // the same words as `n` calls of next_u32
                stochastic_round_with(cell, level.one, words);
            });
    }
}

/// [`CountRounding::Stochastic`] for one cell, with its draws given as the generator's words:
/// the value `gen::<f32>()` of `rand` 0.8 is `(word >> 8) * 2^-24`, so this is the same rounding as
/// [`round_to_counts`] drawing from that generator. `words` has one spare word at the end.
fn stochastic_round_with(cell: &mut [f32], unit: f32, words: &[u32]) {
    const SCALE: f32 = 1.0 / (1u32 << 24) as f32;
    let last = words.len() - 1;
    let mut j = 0;
    let mask = |b: bool| (b as u32).wrapping_neg();
    for v in cell.iter_mut() {
        let x = *v;
        // bitwise, not short-circuit: the selects below compile to masks, not branches
        let below = x < unit;
        let draws = below & (x > 0.0);
        // j never passes `last` (one spare word); the clamp lets the compiler drop the bounds branch
        let r = SCALE * (words[j.min(last)] >> 8) as f32;
        let up = unit.to_bits() & mask(draws & (r * unit < x));
        *v = f32::from_bits((up & mask(below)) | (x.to_bits() & !mask(below)));
        j += draws as usize;
    }
}

/// Puts the values of one predicted cell below one count on the count lattice (see
/// [`CountRounding`]), drawing from `rng` one value at a time: the definition, against which the
/// parallel [`RoundingStream`] is tested.
#[cfg(test)]
fn round_to_counts<R: Rng>(cell: &mut [f32], level: CountLevels, how: CountRounding, rng: &mut R) {
    if level.one <= 0.0 {
        return;
    }
    match how {
        CountRounding::Off => {}
        CountRounding::Half => round_half(cell, level),
        CountRounding::Stochastic => {
            let unit = level.one;
            for v in cell.iter_mut().filter(|v| **v < unit) {
                *v = if *v > 0.0 && rng.gen::<f32>() * unit < *v {
                    unit
                } else {
                    0.0
                };
            }
        }
    }
}

/// [`CountRounding::Half`] for one cell: values below half a count become 0.
fn round_half(cell: &mut [f32], level: CountLevels) {
    if level.one > 0.0 {
        cell.iter_mut().filter(|v| **v < level.half).for_each(|v| *v = 0.0);
    }
}

/// `k` row indices of `n`: without replacement when n >= k, otherwise with.
fn sample_rows(n: usize, k: usize, rng: &mut StdRng) -> Vec<usize> {
    if n >= k {
        // Partial Fisher-Yates over a virtual permutation (swaps recorded sparsely).
        let mut swapped = std::collections::HashMap::new();
        (0..k)
            .map(|i| {
                let j = rng.gen_range(i..n);
                let vi = *swapped.get(&i).unwrap_or(&i);
                let vj = *swapped.get(&j).unwrap_or(&j);
                swapped.insert(j, vi);
                vj
            })
            .collect()
    } else {
        (0..k).map(|_| rng.gen_range(0..n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_count_is_the_smallest_positive_log1p_value() {
        // 1 and 2 counts of size factor 2.5
        let cell = [0.0, (2.5f32).ln_1p(), (5.0f32).ln_1p(), 0.0];
        let l = count_levels(&cell, "log1p");
        assert_eq!(l.one, (2.5f32).ln_1p());
        assert!((l.half - (1.25f32).ln_1p()).abs() < 1e-6);
        assert_eq!(
            count_levels(&[0.0, 1.0, 4.0], "raw-counts"),
            CountLevels { one: 1.0, half: 0.5 }
        );
        assert_eq!(count_levels(&cell, "other").one, 0.0);
        assert_eq!(count_levels(&[0.0; 3], "log1p").one, 0.0);
    }

    /// Regression: data that only look like log1p (non-negative, small) but are not made of counts
    /// (the continuous synthetic set of `train_resume.rs`) had every value below the cell's
    /// smallest one rounded away.
    #[test]
    fn cells_not_made_of_counts_are_not_rounded() {
        let continuous = [0.31f32, 1.27, 0.0, 2.05];
        assert_eq!(count_levels(&continuous, "log1p").one, 0.0);
        // no gene at exactly one count: the smallest value is two counts, odd counts are off its lattice
        let s = 1.7f64;
        let two_three: Vec<f32> = [2.0f64, 3.0].iter().map(|k| (k * s).ln_1p() as f32).collect();
        assert_eq!(count_levels(&two_three, "log1p").one, 0.0);
        // a real one: 1, 2, 7 and 120 counts of size factor 1.7
        let real: Vec<f32> = [0.0f64, 1.0, 2.0, 7.0, 120.0]
            .iter()
            .map(|k| (k * s).ln_1p() as f32)
            .collect();
        assert!((count_levels(&real, "log1p").one - s.ln_1p() as f32).abs() < 1e-6);
        assert_eq!(count_levels(&[0.0, 2.5], "raw-counts").one, 0.0);
    }

    #[test]
    fn stochastic_rounding_keeps_the_mean_and_makes_real_zeros() {
        let mut rng = StdRng::seed_from_u64(7);
        let level = count_levels(&[0.0, (2.0f32).ln_1p()], "log1p");
        let unit = level.one;
        let mut cell = vec![0.1 * unit; 100_000];
        cell.push(3.0); // above one count: untouched
        cell.push(-0.2); // negative (a model without the ReLU): 0
        round_to_counts(&mut cell, level, CountRounding::Stochastic, &mut rng);
        assert_eq!(cell[100_000], 3.0);
        assert_eq!(cell[100_001], 0.0);
        assert!(cell[..100_000].iter().all(|&v| v == 0.0 || v == unit));
        let mean = cell[..100_000].iter().map(|&v| v as f64).sum::<f64>() / 100_000.0;
        assert!((mean / (0.1 * unit as f64) - 1.0).abs() < 0.05, "mean {mean}");
    }

    /// The parallel rounding takes the same draws as one generator rounding the cells in order
    /// (what predictions were made with before it ran in parallel), across several passes.
    #[test]
    fn parallel_rounding_reproduces_the_serial_stream() {
        let (g, n) = (37, 300);
        let mut gen = StdRng::seed_from_u64(11);
        let unit = (2.0f32).ln_1p();
        let mut levels: Vec<CountLevels> = (0..n).map(|_| CountLevels { one: unit, half: 0.4 }).collect();
        levels[5].one = 0.0; // a cell not made of counts: no draws
        let mut cells: Vec<f32> = (0..n * g)
            .map(|_| {
                if gen.gen::<f32>() < 0.3 {
                    0.0
                } else {
                    gen.gen::<f32>() * 2.0 * unit - 0.1
                }
            })
            .collect();
        // a cell that takes no draws but has negative values (they become 0) and values above one count
        for (k, v) in cells[7 * g..8 * g].iter_mut().enumerate() {
            *v = if k % 2 == 0 { -0.05 } else { 1.5 * unit };
        }
        let mut serial = cells.clone();
        let mut one = StdRng::seed_from_u64(99);
        for (cell, &level) in serial.chunks_exact_mut(g).zip(&levels) {
            round_to_counts(cell, level, CountRounding::Stochastic, &mut one);
        }
        let mut parallel = cells.clone();
        let mut stream = RoundingStream::new(99);
        let (a, b) = parallel.split_at_mut(120 * g);
        stream.round_cells(a, g, &levels[..120], CountRounding::Stochastic);
        stream.round_cells(b, g, &levels[120..], CountRounding::Stochastic);
        assert_eq!(serial, parallel);
        assert_ne!(serial, cells);
    }

    #[test]
    fn half_rounding_zeroes_below_half_a_count() {
        let mut rng = StdRng::seed_from_u64(1);
        // size factor 2: one count log1p(2), half a count log1p(1)
        let level = count_levels(&[(2.0f32).ln_1p()], "log1p");
        let mut cell = vec![0.9 * (1.0f32).ln_1p(), 1.1 * (1.0f32).ln_1p(), 2.0];
        round_to_counts(&mut cell, level, CountRounding::Half, &mut rng);
        assert_eq!(cell[0], 0.0);
        assert!(cell[1] > 0.0 && cell[2] == 2.0);
    }

    #[test]
    fn sampling_without_replacement_is_distinct() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut v = sample_rows(10, 10, &mut rng);
        v.sort();
        assert_eq!(v, (0..10).collect::<Vec<_>>());
        assert!(sample_rows(3, 8, &mut rng).iter().all(|&i| i < 3));
    }
}
