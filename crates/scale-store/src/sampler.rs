//! The set sampler: batches of B matched (control set, perturbed set) pairs of S cells, dense f32.
//!
//! Reproducibility: the content of batch `k` depends only on (seed, k) and the group list, never on the
//! number of threads or timing. An epoch is a seeded shuffle of "set slots": each perturbed group
//! contributes ceil(n_cells / S) slots (at least one); batch `j` of the epoch takes slots `j*B..(j+1)*B`
//! (the last batch wraps to the epoch's first slots). Within a set, S cells are drawn without replacement
//! when the group has at least S cells, with replacement otherwise. The control set comes from the
//! control group of the same (dataset, context, batch) when it exists, else from all controls of the
//! same (dataset, context) — a "fallback", counted.
//!
//! Workers: `threads` worker threads each build every `threads`-th batch into buffers that the consumer
//! hands back (recycled), so steady state allocates nothing; channels are bounded (`prefetch` batches per
//! worker). `threads = 0` builds batches on the calling thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::batch::SetBatch;
use crate::error::StoreError;
use crate::store::Store;

#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// Sets per batch (B).
    pub n_sets: usize,
    /// Cells per set (S).
    pub set_size: usize,
    pub seed: u64,
    /// Worker threads (0: build batches on the caller's thread).
    pub threads: usize,
    /// Probability that a set is an identity set: a control set that is its own target (pert = control).
    pub identity_fraction: f32,
    /// Batches buffered per worker.
    pub prefetch: usize,
    /// First batch index to produce (resume: the number of batches already consumed).
    pub start_batch: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            n_sets: 16,
            set_size: 128,
            seed: 0,
            threads: 2,
            identity_fraction: 0.0,
            prefetch: 2,
            start_batch: 0,
        }
    }
}

/// What the sampler draws from, precomputed once and shared by the workers.
struct Plan {
    /// Perturbed (target) groups.
    targets: Vec<usize>,
    /// Slots per target group per epoch.
    slots: Vec<u32>,
    total_slots: usize,
    /// Control groups usable as identity sets (the split's control groups).
    identity_groups: Vec<usize>,
    /// Per target group (index into `targets`): control groups to draw the control set from, and
    /// whether that is the fallback pool.
    control_pool: Vec<(Vec<usize>, bool)>,
    control_pert: u32,
}

impl Plan {
    fn new(store: &Store, groups: &[usize], cfg: &SamplerConfig) -> Result<Plan, StoreError> {
        let m = store.manifest();
        let mut by_dcb: HashMap<(u32, u32, u32), usize> = HashMap::new();
        let mut by_dc: HashMap<(u32, u32), Vec<usize>> = HashMap::new();
        for (g, gi) in m.groups.iter().enumerate() {
            if gi.pert == m.control_pert {
                by_dcb.insert((gi.dataset, gi.context, gi.batch), g);
                by_dc.entry((gi.dataset, gi.context)).or_default().push(g);
            }
        }
        let mut targets = Vec::new();
        let mut identity_groups = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for &g in groups {
            let gi = store.group(g)?;
            if !seen.insert(g) {
                continue;
            }
            if gi.pert == m.control_pert {
                identity_groups.push(g);
            } else {
                targets.push(g);
            }
        }
        if targets.is_empty() && (identity_groups.is_empty() || cfg.identity_fraction <= 0.0) {
            return Err(StoreError::Sampler(
                "no perturbed groups to sample (and no identity sets requested)".into(),
            ));
        }
        let s = cfg.set_size as u64;
        let slots: Vec<u32> = targets
            .iter()
            .map(|&g| m.groups[g].n_cells.div_ceil(s).max(1) as u32)
            .collect();
        let mut total_slots: usize = slots.iter().map(|&x| x as usize).sum();
        if targets.is_empty() {
            // Identity-only sampling: one slot per control group.
            total_slots = identity_groups.len();
        }
        let mut control_pool = Vec::with_capacity(targets.len());
        for &g in &targets {
            let gi = &m.groups[g];
            match by_dcb.get(&(gi.dataset, gi.context, gi.batch)) {
                Some(&c) => control_pool.push((vec![c], false)),
                None => {
                    let pool = by_dc.get(&(gi.dataset, gi.context)).cloned().unwrap_or_default();
                    if pool.is_empty() {
                        return Err(StoreError::Sampler(format!(
                            "group {g} (context `{}`) has no control cells in its dataset",
                            m.contexts[gi.context as usize]
                        )));
                    }
                    control_pool.push((pool, true));
                }
            }
        }
        Ok(Plan {
            targets,
            slots,
            total_slots,
            identity_groups,
            control_pool,
            control_pert: m.control_pert,
        })
    }

    fn batches_per_epoch(&self, n_sets: usize) -> u64 {
        self.total_slots.div_ceil(n_sets).max(1) as u64
    }

    /// The shuffled slot list of an epoch: entries index `targets` (or `identity_groups` when there are
    /// no targets).
    fn epoch_slots(&self, seed: u64, epoch: u64) -> Vec<u32> {
        let mut v: Vec<u32> = Vec::with_capacity(self.total_slots);
        if self.targets.is_empty() {
            v.extend(0..self.identity_groups.len() as u32);
        } else {
            for (t, &n) in self.slots.iter().enumerate() {
                v.extend(std::iter::repeat_n(t as u32, n as usize));
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, 0x45_50_4f_43_48, epoch));
        v.shuffle(&mut rng);
        v
    }
}

/// SplitMix-style mixing of (seed, stream, index) into one 64-bit seed.
fn mix(seed: u64, stream: u64, index: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Per-worker state: the current epoch's slot list and scratch buffers.
struct Builder {
    store: Arc<Store>,
    plan: Arc<Plan>,
    cfg: SamplerConfig,
    epoch: Option<(u64, Vec<u32>)>,
    picks: Vec<usize>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    sets: AtomicU64,
    fallback_sets: AtomicU64,
    identity_sets: AtomicU64,
}

/// Counters over every batch built so far (workers may be ahead of the consumer by the prefetch depth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplerStats {
    pub sets: u64,
    /// Sets whose control set came from the context pool because the batch had no controls.
    pub fallback_sets: u64,
    pub identity_sets: u64,
}

impl Builder {
    /// Draws `S` rows of the pool (concatenated groups) into `picks` (store row numbers).
    fn draw(&mut self, rng: &mut ChaCha8Rng, pool: &[usize]) {
        let s = self.cfg.set_size;
        let m = self.store.manifest();
        let total: u64 = pool.iter().map(|&g| m.groups[g].n_cells).sum();
        self.picks.clear();
        let locate = |mut k: u64| -> usize {
            for &g in pool {
                let gi = &m.groups[g];
                if k < gi.n_cells {
                    return (gi.offset + k) as usize;
                }
                k -= gi.n_cells;
            }
            unreachable!("k < total")
        };
        if total >= s as u64 {
            if pool.len() == 1 {
                let off = m.groups[pool[0]].offset as usize;
                for k in rand::seq::index::sample(rng, total as usize, s).into_iter() {
                    self.picks.push(off + k);
                }
            } else {
                for k in rand::seq::index::sample(rng, total as usize, s).into_iter() {
                    self.picks.push(locate(k as u64));
                }
            }
        } else {
            for _ in 0..s {
                let k = rng.gen_range(0..total);
                self.picks.push(locate(k));
            }
        }
    }

    fn fill_cells(&self, out: &mut [f32]) {
        let g = self.store.n_features();
        let mut bytes = 0;
        for (i, &row) in self.picks.iter().enumerate() {
            self.store.read_row_into(row, &mut out[i * g..(i + 1) * g]);
            bytes += self.store.row_bytes(row);
        }
        self.store.account(bytes);
    }

    /// Builds batch `k` into `b` (buffers resized if needed).
    fn build(&mut self, k: u64, b: &mut SetBatch) {
        let (nb, s, g) = (self.cfg.n_sets, self.cfg.set_size, self.store.n_features());
        if b.n_sets != nb || b.set_size != s || b.n_features != g || b.control.len() != nb * s * g {
            *b = SetBatch::zeros(nb, s, g);
        }
        let bpe = self.plan.batches_per_epoch(nb);
        let (epoch, j) = (k / bpe, (k % bpe) as usize);
        if self.epoch.as_ref().map(|e| e.0) != Some(epoch) {
            self.epoch = Some((epoch, self.plan.epoch_slots(self.cfg.seed, epoch)));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.cfg.seed, 0x42_41_54_43_48, k));
        let plan = self.plan.clone();
        let m_control = plan.control_pert;
        let mut fallbacks = 0;
        let mut identities = 0;
        for i in 0..nb {
            let slots = &self.epoch.as_ref().map(|e| e.1.as_slice()).unwrap_or(&[]);
            let slot = slots[(j * nb + i) % slots.len()] as usize;
            let identity = plan.targets.is_empty()
                || (!plan.identity_groups.is_empty()
                    && self.cfg.identity_fraction > 0.0
                    && rng.gen::<f32>() < self.cfg.identity_fraction);
            let cs = i * s * g..(i + 1) * s * g;
            if identity {
                let cg = if plan.targets.is_empty() {
                    plan.identity_groups[slot]
                } else {
                    plan.identity_groups[rng.gen_range(0..plan.identity_groups.len())]
                };
                self.draw(&mut rng, &[cg]);
                self.fill_cells(&mut b.control[cs.clone()]);
                b.target[cs.clone()].copy_from_slice(&b.control[cs]);
                let gi = &self.store.manifest().groups[cg];
                b.pert[i] = m_control;
                b.context[i] = gi.context;
                b.batch[i] = gi.batch;
                b.dose[i] = 0.0;
                identities += 1;
            } else {
                let tg = plan.targets[slot];
                self.draw(&mut rng, &[tg]);
                self.fill_cells(&mut b.target[cs.clone()]);
                let (pool, fallback) = &plan.control_pool[slot];
                self.draw(&mut rng, pool);
                self.fill_cells(&mut b.control[cs]);
                let gi = &self.store.manifest().groups[tg];
                b.pert[i] = gi.pert;
                b.context[i] = gi.context;
                b.batch[i] = gi.batch;
                b.dose[i] = gi.dose;
                if *fallback {
                    fallbacks += 1;
                }
            }
        }
        self.stats.sets.fetch_add(nb as u64, Ordering::Relaxed);
        self.stats.fallback_sets.fetch_add(fallbacks, Ordering::Relaxed);
        self.stats.identity_sets.fetch_add(identities, Ordering::Relaxed);
    }
}

struct Worker {
    rx: Receiver<SetBatch>,
    recycle: SyncSender<SetBatch>,
    handle: Option<JoinHandle<()>>,
}

pub struct Sampler {
    cfg: SamplerConfig,
    plan: Arc<Plan>,
    stats: Arc<Stats>,
    workers: Vec<Worker>,
    /// Inline builder when `threads == 0`.
    inline: Option<Builder>,
    stop: Arc<AtomicBool>,
    /// Index of the next batch to deliver.
    next: u64,
    current: SetBatch,
    /// Worker that owns `current`'s buffers (to recycle them).
    current_owner: Option<usize>,
}

impl Sampler {
    /// Samples from `groups` (group ids, typically `split.train`): perturbed groups are targets, control
    /// groups serve identity sets. Control sets are drawn from the store's controls of the same context.
    pub fn new(store: Arc<Store>, groups: Vec<usize>, cfg: SamplerConfig) -> Result<Sampler, StoreError> {
        if cfg.n_sets == 0 || cfg.set_size == 0 {
            return Err(StoreError::Sampler(format!(
                "n_sets ({}) and set_size ({}) must be positive",
                cfg.n_sets, cfg.set_size
            )));
        }
        if !(0.0..=1.0).contains(&cfg.identity_fraction) {
            return Err(StoreError::Sampler(format!(
                "identity_fraction {} is not in [0, 1]",
                cfg.identity_fraction
            )));
        }
        let plan = Arc::new(Plan::new(&store, &groups, &cfg)?);
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let make_builder = || Builder {
            store: store.clone(),
            plan: plan.clone(),
            cfg: cfg.clone(),
            epoch: None,
            picks: Vec::with_capacity(cfg.set_size),
            stats: stats.clone(),
        };
        let mut workers = Vec::new();
        let mut inline = None;
        if cfg.threads == 0 {
            inline = Some(make_builder());
        } else {
            let t = cfg.threads as u64;
            let depth = cfg.prefetch.max(1);
            for w in 0..cfg.threads {
                let (tx, rx) = sync_channel::<SetBatch>(depth);
                let (recycle_tx, recycle_rx) = sync_channel::<SetBatch>(depth + 1);
                for _ in 0..depth {
                    // Buffers are allocated lazily by `build` (sized there).
                    let _ = recycle_tx.send(SetBatch::default());
                }
                let mut builder = make_builder();
                let stop = stop.clone();
                let first = cfg.start_batch + w as u64;
                let handle = std::thread::Builder::new()
                    .name(format!("scale-sampler-{w}"))
                    .spawn(move || {
                        let mut k = first;
                        while let Ok(mut buf) = recycle_rx.recv() {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            builder.build(k, &mut buf);
                            if tx.send(buf).is_err() {
                                break;
                            }
                            k += t;
                        }
                    })
                    .map_err(|e| StoreError::Sampler(format!("cannot start worker thread: {e}")))?;
                workers.push(Worker {
                    rx,
                    recycle: recycle_tx,
                    handle: Some(handle),
                });
            }
        }
        Ok(Sampler {
            next: cfg.start_batch,
            cfg,
            plan,
            stats,
            workers,
            inline,
            stop,
            current: SetBatch::default(),
            current_owner: None,
        })
    }

    /// The next batch; valid until the following call.
    pub fn next_batch(&mut self) -> Result<&SetBatch, StoreError> {
        let k = self.next;
        if let Some(b) = self.inline.as_mut() {
            b.build(k, &mut self.current);
        } else {
            let w = ((k - self.cfg.start_batch) % self.workers.len() as u64) as usize;
            let fresh = self.workers[w]
                .rx
                .recv()
                .map_err(|_| StoreError::Sampler(format!("worker {w} stopped unexpectedly")))?;
            let old = std::mem::replace(&mut self.current, fresh);
            if let Some(o) = self.current_owner {
                // The worker may have exited already (drop in progress); then the buffer is just freed.
                let _ = self.workers[o].recycle.send(old);
            }
            self.current_owner = Some(w);
        }
        self.next += 1;
        Ok(&self.current)
    }

    /// Epoch of the batch most recently returned (0 before the first).
    pub fn epoch(&self) -> u64 {
        self.next.saturating_sub(1) / self.batches_per_epoch()
    }

    /// Batches returned so far plus `start_batch`: pass this as `start_batch` to resume.
    pub fn batches_done(&self) -> u64 {
        self.next
    }

    pub fn batches_per_epoch(&self) -> u64 {
        self.plan.batches_per_epoch(self.cfg.n_sets)
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    pub fn stats(&self) -> SamplerStats {
        SamplerStats {
            sets: self.stats.sets.load(Ordering::Relaxed),
            fallback_sets: self.stats.fallback_sets.load(Ordering::Relaxed),
            identity_sets: self.stats.identity_sets.load(Ordering::Relaxed),
        }
    }

    /// Perturbed groups whose control sets come from the context pool (no controls in their batch).
    pub fn n_fallback_groups(&self) -> usize {
        self.plan.control_pool.iter().filter(|p| p.1).count()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in &mut self.workers {
            // Dropping our ends unblocks the worker: its send fails or its recycle channel closes.
            let (dummy_tx, dummy_rx) = sync_channel(1);
            drop(std::mem::replace(&mut w.rx, dummy_rx));
            drop(std::mem::replace(&mut w.recycle, dummy_tx));
        }
        for w in &mut self.workers {
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }
}
