//! Differential expression of every perturbation against the control cells (pdex 0.3.0, mode "ref",
//! as cell-eval 0.8.2 calls it: `is_log1p=True`, `geometric_mean=True`, `epsilon=0`).
//!
//! Per gene and perturbation: two-sided Mann-Whitney U (normal approximation, tie + continuity
//! correction), Benjamini-Hochberg FDR per perturbation over all genes, count-space means
//! `expm1(mean(X))` and log2 fold change / percent change of those means.
//!
//! Speed: genes are processed in parallel blocks of `GENE_BLOCK` straight from the CSR rows (each
//! task finds every row's start by one binary search, then advances a cursor block by block; no
//! full transpose is materialised). Within a gene, zeros are one tie block handled analytically;
//! each group's non-zeros are sorted once and every perturbation is merged against the once-sorted
//! control values with a galloping search from the previous position, so the cost is about
//! O(nnz log gap) per gene instead of re-ranking control cells per perturbation.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use scale_io::Matrix;

use crate::error::{EvalError, Result};
use crate::fmt::{csv_field, parse_float, push_f32, push_f64, write_atomic_with};
use crate::groups::Groups;
use crate::stats::{bh_fdr, mwu_from_rank_sum};
use crate::Progress;

/// Genes per parallel work item.
const GENE_BLOCK: usize = 512;

/// The rows of one perturbation in a DE table (pdex's output schema).
#[derive(Debug, Clone, PartialEq)]
pub struct DeBlock {
    pub target: String,
    /// Index into [`DeTable::features`], one per row.
    pub feature: Vec<u32>,
    /// Count-space geometric means (float32 in pdex).
    pub target_mean: Vec<f32>,
    pub ref_mean: Vec<f32>,
    pub target_membership: Vec<i64>,
    pub ref_membership: Vec<i64>,
    pub log2_fold_change: Vec<f64>,
    pub percent_change: Vec<f64>,
    pub p_value: Vec<f64>,
    pub statistic: Vec<f64>,
    pub fdr: Vec<f64>,
}

impl DeBlock {
    pub fn len(&self) -> usize {
        self.feature.len()
    }

    pub fn is_empty(&self) -> bool {
        self.feature.is_empty()
    }
}

/// A DE table: blocks in output order (perturbations sorted), features interned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeTable {
    pub features: Vec<String>,
    pub blocks: Vec<DeBlock>,
}

/// Per-gene results of one gene block: `[gene_in_block][pert]`.
struct BlockOut {
    ref_mean: Vec<f32>,
    target_mean: Vec<f32>,
    stat: Vec<f64>,
    p: Vec<f64>,
}

/// Sum in float32 of `v * (1/n)` in cell order: what scipy's CSR `mean(axis=0)` does on float32
/// data (scale each stored value, then a float32 column sum). Dense input: numpy's float32
/// column sum divided by n.
#[inline]
fn mean_f32(vals: &[f32], n: usize, dense: bool) -> f32 {
    if n == 0 {
        return f32::NAN;
    }
    if dense {
        let mut s = 0f32;
        for &v in vals {
            s += v;
        }
        s / n as f32
    } else {
        let inv = (1.0f64 / n as f64) as f32;
        let mut s = 0f32;
        for &v in vals {
            s += v * inv;
        }
        s
    }
}

#[cfg(test)]
/// Rank sum and tie term of a sorted target sample against the sorted control non-zeros, with
/// `nz` implicit zeros in total of which `nz_a` are in the target.
/// `ctrl_tie_nz`: sum of `t^3 - t` over the control's own tie blocks among non-zeros.
fn rank_sum_vs_sorted(target: &[f32], ctrl: &[f32], nz: usize, nz_a: usize, ctrl_tie_nz: f64) -> (f64, f64) {
    let nzf = nz as f64;
    let mut r1 = nz_a as f64 * (nzf + 1.0) / 2.0;
    let mut tie = nzf * nzf * nzf - nzf + ctrl_tie_nz;
    let mut i = 0;
    let mut lo = 0usize; // control values < current target value start at or after `lo`
    while i < target.len() {
        let v = target[i];
        let mut j = i + 1;
        while j < target.len() && target[j] == v {
            j += 1;
        }
        let a = (j - i) as f64;
        let less_c = gallop(ctrl, lo, |c| c < v);
        let eq_end = gallop(ctrl, less_c, |c| c <= v);
        let b = (eq_end - less_c) as f64;
        lo = less_c;
        let t = a + b;
        tie += (t * t * t - t) - (b * b * b - b);
        // combined position before this tie block among non-zeros: i target + less_c control values
        let avg = nzf + (i + less_c) as f64 + (t + 1.0) / 2.0;
        r1 += a * avg;
        i = j;
    }
    (r1, tie)
}

#[cfg(test)]
/// First index `>= start` of `s` where `pred` is false, given `s[start..]` is partitioned (true then
/// false). A short linear scan first (successive targets are usually a few control values apart, and
/// a scan mispredicts once where a search mispredicts at every step), then exponential steps and a
/// binary search for long gaps.
#[inline]
fn gallop(s: &[f32], start: usize, pred: impl Fn(f32) -> bool) -> usize {
    const SCAN: usize = 16;
    let scan_end = (start + SCAN).min(s.len());
    let mut lo = start;
    while lo < scan_end {
        if !pred(s[lo]) {
            return lo;
        }
        lo += 1;
    }
    let mut step = 1;
    loop {
        let probe = lo + step - 1;
        if probe >= s.len() || !pred(s[probe]) {
            let hi = probe.min(s.len());
            return lo + s[lo..hi].partition_point(|&c| pred(c));
        }
        lo = probe + 1;
        step *= 2;
    }
}

/// A u32 whose unsigned order is the numeric order of non-zero finite floats (equal keys exactly
/// when the floats are equal: zeros, the only values with two encodings, never get here).
#[inline]
fn order_key(v: f32) -> u32 {
    let b = v.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// Sorts by the high 32 bits (least-significant-digit radix, 8 bits per pass, the four digit histograms
/// counted in one read, passes where every element shares the digit skipped). The order among equal
/// high halves is not needed by the sweep, which aggregates each tie block.
fn radix_sort_by_high_u32(v: &mut Vec<u64>, scratch: &mut Vec<u64>) {
    if v.len() <= 64 {
        v.sort_unstable();
        return;
    }
    let mut count = [[0u32; 256]; 4];
    for &x in v.iter() {
        let h = (x >> 32) as u32;
        count[0][(h & 0xff) as usize] += 1;
        count[1][((h >> 8) & 0xff) as usize] += 1;
        count[2][((h >> 16) & 0xff) as usize] += 1;
        count[3][(h >> 24) as usize] += 1;
    }
    scratch.clear();
    scratch.resize(v.len(), 0);
    for (d, count) in count.iter_mut().enumerate() {
        if count.contains(&(v.len() as u32)) {
            continue;
        }
        let mut at = 0u32;
        for c in count.iter_mut() {
            let n = *c;
            *c = at;
            at += n;
        }
        let shift = 32 + 8 * d as u32;
        for &x in v.iter() {
            let b = ((x >> shift) & 0xff) as usize;
            scratch[count[b] as usize] = x;
            count[b] += 1;
        }
        std::mem::swap(v, scratch);
    }
}

/// Per-group Mann-Whitney rank sums and tie terms against the control, from one column sorted by
/// value. The arithmetic is the same, in the same order, as merging each sorted perturbation into
/// the sorted control values (see `rank_sum_vs_sorted`), so results are bit-identical.
struct RankSweep {
    r1: Vec<f64>,
    tie: Vec<f64>,
    nz: Vec<f64>,
    below: Vec<usize>,
}

impl RankSweep {
    fn new(n_groups: usize) -> Self {
        RankSweep {
            r1: vec![0.0; n_groups],
            tie: vec![0.0; n_groups],
            nz: vec![0.0; n_groups],
            below: vec![0; n_groups],
        }
    }

    /// Zeros form one tie block below (or around) the non-zeros: start each perturbation's sums
    /// from it, plus the control's own ties among its non-zeros.
    fn reset(
        &mut self,
        groups: &Groups,
        perts: &[usize],
        ctrl: usize,
        nnz_ctrl: usize,
        nnz: impl Fn(usize) -> usize,
        keys: &[u64],
    ) {
        // Only blocks of two or more equal values add to a tie term (t^3 - t is 0 for t = 1, and
        // adding 0.0 leaves the sum's bits unchanged), so singletons are skipped cheaply.
        let mut ctrl_tie = 0.0;
        let mut i = 0;
        while i + 1 < keys.len() {
            let k = keys[i] >> 32;
            if keys[i + 1] >> 32 != k {
                i += 1;
                continue;
            }
            let mut j = i;
            let mut b = 0usize;
            while j < keys.len() && keys[j] >> 32 == k {
                b += ((keys[j] & 0xffff_ffff) as usize == ctrl) as usize;
                j += 1;
            }
            if b > 0 {
                let t = b as f64;
                ctrl_tie += t * t * t - t;
            }
            i = j;
        }
        let n_ctrl = groups.counts[ctrl];
        for &g in perts {
            let nz_a = groups.counts[g] - nnz(g);
            let nz = (nz_a + n_ctrl - nnz_ctrl) as f64;
            self.nz[g] = nz;
            self.r1[g] = nz_a as f64 * (nz + 1.0) / 2.0;
            self.tie[g] = nz * nz * nz - nz + ctrl_tie;
            self.below[g] = 0;
        }
    }

    fn run(&mut self, keys: &[u64], ctrl: usize) {
        let mut less_c = 0usize;
        let mut i = 0;
        while i < keys.len() {
            let k = keys[i] >> 32;
            if i + 1 == keys.len() || keys[i + 1] >> 32 != k {
                // A value held by one cell (most of log-normalised data): the general path below
                // with a = 1 and no control in the block, whose tie increment is exactly 0.
                let g = (keys[i] & 0xffff_ffff) as usize;
                if g == ctrl {
                    less_c += 1;
                } else {
                    self.r1[g] += self.nz[g] + (self.below[g] + less_c) as f64 + 1.0;
                    self.below[g] += 1;
                }
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < keys.len() && keys[j] >> 32 == k {
                j += 1;
            }
            // within a tie block entries are ordered by group: count the control, then each group's run
            let block = &keys[i..j];
            let b = block.iter().filter(|&&x| (x & 0xffff_ffff) as usize == ctrl).count();
            let bf = b as f64;
            let mut r = 0;
            while r < block.len() {
                let g = (block[r] & 0xffff_ffff) as usize;
                let mut e = r + 1;
                while e < block.len() && (block[e] & 0xffff_ffff) as usize == g {
                    e += 1;
                }
                if g != ctrl {
                    let a = (e - r) as f64;
                    let t = a + bf;
                    self.tie[g] += (t * t * t - t) - (bf * bf * bf - bf);
                    let avg = self.nz[g] + (self.below[g] + less_c) as f64 + (t + 1.0) / 2.0;
                    self.r1[g] += a * avg;
                    self.below[g] += e - r;
                }
                r = e;
            }
            less_c += b;
            i = j;
        }
    }
}

#[cfg(test)]
fn tie_term_sorted(v: &[f32]) -> f64 {
    let mut tie = 0.0;
    let mut i = 0;
    while i < v.len() {
        let mut j = i + 1;
        while j < v.len() && v[j] == v[i] {
            j += 1;
        }
        let t = (j - i) as f64;
        tie += t * t * t - t;
        i = j;
    }
    tie
}

/// Runs DE for every non-control group of `groups` against the control.
/// `x`: cells × genes, log1p-normalised; `genes`: one name per column.
pub fn differential_expression(x: &Matrix, genes: &[String], groups: &Groups, progress: &dyn Progress) -> DeTable {
    let n_genes = x.n_cols();
    let n_groups = groups.names.len();
    let dense = matches!(x, Matrix::Dense(_));
    let pert_codes: Vec<usize> = groups.perts().map(|(c, _)| c).collect();
    let n_perts = pert_codes.len();
    let ctrl = groups.control;
    let n_ctrl = groups.counts[ctrl];
    progress.start("DE", n_genes as u64);
    let t0 = std::time::Instant::now();

    // Parallel tasks take a run of gene blocks; each row's position is found once per task by
    // binary search and then advanced block by block (a search per row per block was the hot spot:
    // one cache miss per step on every row).
    let n_blocks = n_genes.div_ceil(GENE_BLOCK);
    let per_task = n_blocks.div_ceil(4 * rayon::current_num_threads().max(1)).max(1);
    let tasks: Vec<(usize, usize)> = (0..n_blocks)
        .step_by(per_task)
        .map(|b| (b, (b + per_task).min(n_blocks)))
        .collect();
    let members = groups.members();
    // Non-zeros per gene (an upper bound on a column's values): each column of a gene block gets a
    // slot of that many values, packed one after another (`slot[k]..`), so appending a value is one
    // store and one increment. A slot of the largest column's size for every column took four times
    // the memory (22 MB a task on the 18,000-gene benchmark).
    let col_nnz: Vec<usize> = match x {
        Matrix::Csr(m) => m.col_counts().into_iter().map(|c| c as usize).collect(),
        Matrix::Dense(m) => vec![m.n_rows; n_genes],
    };
    let flat_len = col_nnz
        .chunks(GENE_BLOCK)
        .map(|c| c.iter().sum::<usize>())
        .max()
        .unwrap_or(0);
    let blocks: Vec<(usize, BlockOut)> = tasks
        .into_par_iter()
        .flat_map_iter(|(b0, b1)| {
            let mut cursor: Vec<usize> = match x {
                Matrix::Csr(m) => (0..m.n_rows)
                    .map(|r| m.row(r).0.partition_point(|&c| (c as usize) < b0 * GENE_BLOCK))
                    .collect(),
                Matrix::Dense(_) => Vec::new(),
            };
            let (pert_codes, members) = (&pert_codes, &members);
            // Buffers reused from block to block: column k of a block holds its values at
            // `flat[slot[k]..][..len[k]]` (a fixed slot per column, so appending is one store and
            // one increment, with no vector header to load).
            let mut flat = vec![0f32; flat_len];
            let mut slot = vec![0usize; GENE_BLOCK];
            let mut len = vec![0u32; GENE_BLOCK];
            let (mut keys, mut scratch) = (Vec::<u64>::new(), Vec::<u64>::new());
            let mut sweep = RankSweep::new(n_groups);
            let col_nnz = &col_nnz;
            (b0..b1)
                .map(move |b| {
                    let g0 = b * GENE_BLOCK;
                    let g1 = (g0 + GENE_BLOCK).min(n_genes);
                    let nb = g1 - g0;
                    // Column slab of this block: per gene, the non-zero values with the cells visited
                    // group by group (cell order inside a group), so each group is one segment of
                    // the column: `seg[g * nb + k]..seg[(g + 1) * nb + k]` for gene `g0 + k`.
                    // (Explicit zeros join the zero tie block, so they are skipped.)
                    let len = &mut len[..nb];
                    len.iter_mut().for_each(|l| *l = 0);
                    let slot = &mut slot[..nb];
                    let mut at = 0;
                    for (s, &n) in slot.iter_mut().zip(&col_nnz[g0..g1]) {
                        *s = at;
                        at += n;
                    }
                    let slot = &*slot;
                    let mut seg = vec![0usize; (n_groups + 1) * nb];
                    for (g, mem) in members.iter().enumerate() {
                        for (k, &l) in len.iter().enumerate() {
                            seg[g * nb + k] = l as usize;
                        }
                        match x {
                            Matrix::Csr(m) => {
                                for &r in mem {
                                    let (idx, val) = m.row(r);
                                    let mut k = cursor[r];
                                    while k < idx.len() && (idx[k] as usize) < g1 {
                                        if val[k] != 0.0 {
                                            let c = idx[k] as usize - g0;
                                            // a column has at most its gene's non-zeros
                                            flat[slot[c] + len[c] as usize] = val[k];
                                            len[c] += 1;
                                        }
                                        k += 1;
                                    }
                                    cursor[r] = k;
                                }
                            }
                            Matrix::Dense(m) => {
                                for &r in mem {
                                    for (c, &v) in m.row(r)[g0..g1].iter().enumerate() {
                                        if v != 0.0 {
                                            flat[slot[c] + len[c] as usize] = v;
                                            len[c] += 1;
                                        }
                                    }
                                }
                            }
                        }
                    }
                    for (k, &l) in len.iter().enumerate() {
                        seg[n_groups * nb + k] = l as usize;
                    }
                    let mut out = BlockOut {
                        ref_mean: Vec::with_capacity(nb),
                        target_mean: Vec::with_capacity(nb * n_perts),
                        stat: Vec::with_capacity(nb * n_perts),
                        p: Vec::with_capacity(nb * n_perts),
                    };
                    for k in 0..nb {
                        let buf = &flat[slot[k]..slot[k] + len[k] as usize];
                        let range = |g: usize| seg[g * nb + k]..seg[(g + 1) * nb + k];
                        // means before sorting (the float32 sum is order dependent)
                        out.ref_mean.push(mean_f32(&buf[range(ctrl)], n_ctrl, dense));
                        for &pc in pert_codes.iter() {
                            out.target_mean
                                .push(mean_f32(&buf[range(pc)], groups.counts[pc], dense));
                        }
                        // One sort of the whole column (value key, group), then one sweep computes
                        // every perturbation's rank sum and tie term against the control at once.
                        keys.clear();
                        for g in 0..n_groups {
                            keys.extend(buf[range(g)].iter().map(|&v| ((order_key(v) as u64) << 32) | g as u64));
                        }
                        radix_sort_by_high_u32(&mut keys, &mut scratch);
                        let nnz_ctrl = range(ctrl).len();
                        sweep.reset(groups, pert_codes, ctrl, nnz_ctrl, |g| range(g).len(), &keys);
                        sweep.run(&keys, ctrl);
                        for &pc in pert_codes.iter() {
                            let (u, p) = mwu_from_rank_sum(sweep.r1[pc], groups.counts[pc], n_ctrl, sweep.tie[pc]);
                            out.stat.push(u);
                            out.p.push(p);
                        }
                    }
                    progress.inc(nb as u64);
                    (g0, out)
                })
                .collect::<Vec<_>>()
        })
        .collect();

    tracing::debug!("DE: per-gene tests in {:.2}s", t0.elapsed().as_secs_f64());
    // Scatter the gene-major block outputs into perturbation-major columns.
    let mut ref_mean = vec![0f32; n_genes];
    let mut t_mean = vec![0f32; n_perts * n_genes];
    let mut stat = vec![0f64; n_perts * n_genes];
    let mut pval = vec![0f64; n_perts * n_genes];
    for (g0, out) in &blocks {
        ref_mean[*g0..*g0 + out.ref_mean.len()].copy_from_slice(&out.ref_mean);
    }
    // one perturbation's row per task: its writes are sequential, the strided side is the reads
    if n_genes > 0 {
        t_mean
            .par_chunks_mut(n_genes)
            .zip(stat.par_chunks_mut(n_genes))
            .zip(pval.par_chunks_mut(n_genes))
            .enumerate()
            .for_each(|(pi, ((t_row, s_row), p_row))| {
                for (g0, out) in &blocks {
                    for k in 0..out.ref_mean.len() {
                        t_row[g0 + k] = out.target_mean[k * n_perts + pi];
                        s_row[g0 + k] = out.stat[k * n_perts + pi];
                        p_row[g0 + k] = out.p[k * n_perts + pi];
                    }
                }
            });
    }
    progress.finish();

    let ref_bulk: Vec<f32> = ref_mean.iter().map(|&m| expm1_f32(m)).collect();
    let blocks: Vec<DeBlock> = pert_codes
        .par_iter()
        .enumerate()
        .map(|(pi, &pc)| {
            let sl = pi * n_genes..(pi + 1) * n_genes;
            let target_bulk: Vec<f32> = t_mean[sl.clone()].iter().map(|&m| expm1_f32(m)).collect();
            let p_value = pval[sl.clone()].to_vec();
            let fdr = bh_fdr(&p_value);
            let log2_fold_change = target_bulk
                .iter()
                .zip(&ref_bulk)
                .map(|(&t, &r)| log2_fc(t, r))
                .collect();
            let percent_change = target_bulk
                .iter()
                .zip(&ref_bulk)
                .map(|(&t, &r)| pct_change(t, r))
                .collect();
            DeBlock {
                target: groups.names[pc].clone(),
                feature: (0..n_genes as u32).collect(),
                target_mean: target_bulk,
                ref_mean: ref_bulk.clone(),
                target_membership: vec![groups.counts[pc] as i64; n_genes],
                ref_membership: vec![n_ctrl as i64; n_genes],
                log2_fold_change,
                percent_change,
                p_value,
                statistic: stat[sl].to_vec(),
                fdr,
            }
        })
        .collect();
    tracing::debug!("DE: tables built at {:.2}s", t0.elapsed().as_secs_f64());
    DeTable {
        features: genes.to_vec(),
        blocks,
    }
}

/// pdex's `_expm1_vec` on a float32 mean: numba calls the C library's float32 `expm1f`, which is
/// not always correctly rounded, so use the same function rather than rounding a float64 result.
fn expm1_f32(m: f32) -> f32 {
    m.exp_m1()
}

/// pdex `log2_fold_change` with epsilon 0: float32 means promoted to float64 by numba, `0/0 -> 0`,
/// one-sided zeros give +-inf.
pub fn log2_fc(t: f32, r: f32) -> f64 {
    let v = ((t as f64) / (r as f64)).log2();
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

/// pdex `percent_change` with epsilon 0: the difference is taken in float32 (both means are
/// float32), the division in float64; `0/0 -> 0`.
pub fn pct_change(t: f32, r: f32) -> f64 {
    let v = ((t - r) as f64) / (r as f64);
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

const DE_COLUMNS: [&str; 11] = [
    "target",
    "feature",
    "target_mean",
    "ref_mean",
    "target_membership",
    "ref_membership",
    "log2_fold_change",
    "percent_change",
    "p_value",
    "statistic",
    "fdr",
];

impl DeTable {
    pub fn n_rows(&self) -> usize {
        self.blocks.iter().map(|b| b.len()).sum()
    }

    /// The block of perturbation `target`.
    pub fn block(&self, target: &str) -> Option<&DeBlock> {
        self.blocks.iter().find(|b| b.target == target)
    }

    /// Drops the columns the metrics do not read (means, memberships, percent change, p-values,
    /// statistics: 48 of a row's 68 bytes), for a table already written out. `scale eval` does this
    /// to real's table before pred's energy distances, the run's peak of memory.
    pub fn keep_metric_columns(&mut self) {
        for b in &mut self.blocks {
            for v in [&mut b.target_mean, &mut b.ref_mean] {
                *v = Vec::new();
            }
            for v in [&mut b.target_membership, &mut b.ref_membership] {
                *v = Vec::new();
            }
            for v in [&mut b.percent_change, &mut b.p_value, &mut b.statistic] {
                *v = Vec::new();
            }
        }
    }

    /// Whether every column of every block has one value per row (not so after
    /// [`keep_metric_columns`](Self::keep_metric_columns)).
    fn is_whole(&self) -> bool {
        self.blocks.iter().all(|b| {
            let n = b.len();
            [b.target_mean.len(), b.ref_mean.len()].iter().all(|&l| l == n)
                && [b.target_membership.len(), b.ref_membership.len()]
                    .iter()
                    .all(|&l| l == n)
                && [
                    b.log2_fold_change.len(),
                    b.percent_change.len(),
                    b.p_value.len(),
                    b.statistic.len(),
                    b.fdr.len(),
                ]
                .iter()
                .all(|&l| l == n)
        })
    }

    /// pdex's CSV (polars `write_csv`), written atomically.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        if !self.is_whole() {
            return Err(EvalError::DeMismatch(format!(
                "{}: the DE table has columns of the wrong length (dropped after it was written?)",
                path.display()
            )));
        }
        // blocks are formatted in parallel (float formatting dominates), then concatenated; fields
        // are appended in place (no String per field) and feature names quoted once
        let features: Vec<String> = self.features.iter().map(|f| csv_field(f)).collect();
        // The reference (control) mean of a gene is the same in every block: formatted once per gene
        // and reused when the value's bits match.
        let mut ref_text: Vec<Option<(u32, String)>> = vec![None; self.features.len()];
        if let Some(b) = self.blocks.first() {
            for i in 0..b.len() {
                if let Some(slot @ None) = ref_text.get_mut(b.feature[i] as usize) {
                    *slot = Some((b.ref_mean[i].to_bits(), crate::fmt::fmt_f32(b.ref_mean[i])));
                }
            }
        }
        let format_block = |b: &DeBlock| {
            let mut s = String::with_capacity(b.len() * 120);
            let target = csv_field(&b.target);
            // BH FDRs repeat (93% of a block's rows on the 18,000-gene benchmark): a value already
            // written in this block is copied from where it was written. Direct-mapped on its bits.
            const SLOTS: usize = 512;
            let mut written_fdr = [(u64::MAX, 0usize, 0usize); SLOTS];
            for i in 0..b.len() {
                s.push_str(&target);
                s.push(',');
                s.push_str(&features[b.feature[i] as usize]);
                s.push(',');
                push_f32(&mut s, b.target_mean[i]);
                s.push(',');
                match ref_text.get(b.feature[i] as usize) {
                    Some(Some((bits, text))) if *bits == b.ref_mean[i].to_bits() => s.push_str(text),
                    _ => push_f32(&mut s, b.ref_mean[i]),
                }
                let mut ints = itoa::Buffer::new();
                s.push(',');
                s.push_str(ints.format(b.target_membership[i]));
                s.push(',');
                s.push_str(ints.format(b.ref_membership[i]));
                s.push(',');
                for v in [b.log2_fold_change[i], b.percent_change[i], b.p_value[i], b.statistic[i]] {
                    push_f64(&mut s, v);
                    s.push(',');
                }
                let bits = b.fdr[i].to_bits();
                let slot = &mut written_fdr[(bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 55) as usize % SLOTS];
                if slot.0 == bits && slot.2 > slot.1 {
                    s.extend_from_within(slot.1..slot.2);
                } else {
                    let start = s.len();
                    push_f64(&mut s, b.fdr[i]);
                    *slot = (bits, start, s.len());
                }
                s.push('\n');
            }
            s
        };
        // A few blocks per thread at a time: the text of the whole table (~120 bytes per row, 200 MB
        // for 100 perturbations x 18,000 genes) is never held at once.
        // One batch is written on this thread while the next is formatted on the pool.
        let batch = 4 * rayon::current_num_threads().max(1);
        let format_batch = |blocks: &[DeBlock]| -> Vec<String> { blocks.par_iter().map(format_block).collect() };
        write_atomic_with(path, |w| {
            w.write_all(DE_COLUMNS.join(",").as_bytes())?;
            w.write_all(b"\n")?;
            let mut batches = self.blocks.chunks(batch);
            let mut parts = batches.next().map(format_batch).unwrap_or_default();
            loop {
                let next = batches.next();
                let mut formatted = None;
                // the writer is not Send: it stays on this thread, the formatting is spawned
                let written = rayon::in_place_scope(|scope| {
                    if let Some(blocks) = next {
                        let slot = &mut formatted;
                        scope.spawn(move |_| *slot = Some(format_batch(blocks)));
                    }
                    parts.iter().try_for_each(|p| w.write_all(p.as_bytes()))
                });
                written?;
                match formatted {
                    Some(f) => parts = f,
                    None => break,
                }
            }
            Ok(())
        })
    }

    /// Reads a DE CSV (pdex's or cell-eval's schema). Required columns: target, feature,
    /// log2_fold_change, p_value, fdr; the others are optional (NaN / 0 when absent). Rows are grouped
    /// by target in order of first appearance, keeping their order (it breaks ties in the rankings).
    /// Feature names are interned against `genes` first so computed and read tables share ids.
    pub fn read_csv(path: &Path, genes: &[String]) -> Result<DeTable> {
        let err = |message: String| EvalError::Csv {
            file: path.to_path_buf(),
            message,
        };
        let rows = crate::fmt::read_csv_rows(path)?;
        let header = rows
            .first()
            .ok_or_else(|| err("empty file; expected a header row".into()))?;
        let col = |name: &str| header.iter().position(|h| h == name);
        let need = |name: &str| col(name).ok_or_else(|| err(format!("missing column `{name}`; header is {header:?}")));
        let (ct, cf, cl, cp, cq) = (
            need("target")?,
            need("feature")?,
            need("log2_fold_change")?,
            need("p_value")?,
            need("fdr")?,
        );
        let (ctm, crm, ctn, crn, cpc, cs) = (
            col("target_mean"),
            col("ref_mean"),
            col("target_membership"),
            col("ref_membership"),
            col("percent_change"),
            col("statistic"),
        );
        let mut table = DeTable {
            features: genes.to_vec(),
            blocks: Vec::new(),
        };
        let mut fid: HashMap<String, u32> = genes.iter().enumerate().map(|(i, g)| (g.clone(), i as u32)).collect();
        let mut bid: HashMap<String, usize> = HashMap::new();
        for (line, r) in rows.iter().enumerate().skip(1) {
            if r.len() == 1 && r[0].is_empty() {
                continue;
            }
            if r.len() != header.len() {
                return Err(err(format!(
                    "line {}: {} fields; expected {} like the header",
                    line + 1,
                    r.len(),
                    header.len()
                )));
            }
            let num = |c: usize, what: &str| -> Result<f64> {
                parse_float(&r[c]).ok_or_else(|| {
                    err(format!(
                        "line {}: column `{what}`: `{}` is not a number",
                        line + 1,
                        r[c]
                    ))
                })
            };
            let opt = |c: Option<usize>| c.and_then(|c| parse_float(&r[c])).unwrap_or(f64::NAN);
            let b = *bid.entry(r[ct].clone()).or_insert_with(|| {
                table.blocks.push(DeBlock {
                    target: r[ct].clone(),
                    feature: vec![],
                    target_mean: vec![],
                    ref_mean: vec![],
                    target_membership: vec![],
                    ref_membership: vec![],
                    log2_fold_change: vec![],
                    percent_change: vec![],
                    p_value: vec![],
                    statistic: vec![],
                    fdr: vec![],
                });
                table.blocks.len() - 1
            });
            let f = match fid.get(&r[cf]) {
                Some(&f) => f,
                None => {
                    table.features.push(r[cf].clone());
                    let f = (table.features.len() - 1) as u32;
                    fid.insert(r[cf].clone(), f);
                    f
                }
            };
            let blk = &mut table.blocks[b];
            blk.feature.push(f);
            blk.log2_fold_change.push(num(cl, "log2_fold_change")?);
            blk.p_value.push(num(cp, "p_value")?);
            blk.fdr.push(num(cq, "fdr")?);
            blk.target_mean.push(opt(ctm) as f32);
            blk.ref_mean.push(opt(crm) as f32);
            blk.target_membership.push(opt(ctn) as i64);
            blk.ref_membership.push(opt(crn) as i64);
            blk.percent_change.push(opt(cpc));
            blk.statistic.push(opt(cs));
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-sweep rank sums must be bit-identical to merging each sorted perturbation into the
    /// sorted control (the original algorithm, kept as the reference): ties inside and across
    /// groups, negative values, groups without non-zeros.
    #[test]
    fn rank_sweep_is_bit_identical_to_the_pairwise_merge() {
        let mut state = 12345u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for trial in 0..300 {
            let n_groups = 2 + (next() % 6) as usize;
            let labels: Vec<String> = (0..40 + (next() % 200) as usize)
                .map(|_| format!("g{}", next() % n_groups as u64))
                .chain(std::iter::once("g0".to_string()))
                .collect();
            let groups = Groups::new(&labels, "g0").unwrap();
            let n_g = groups.names.len();
            let ctrl = groups.control;
            // non-zero values per group (cell order irrelevant here); few distinct values -> ties
            let distinct = 1 + (next() % if trial % 2 == 0 { 5 } else { 1000 }) as i64;
            let mut vals: Vec<Vec<f32>> = vec![Vec::new(); n_g];
            for (c, &code) in groups.codes.iter().enumerate() {
                if next() % 3 != 0 {
                    let v = ((next() as i64 % distinct) - distinct / 3) as f32 * 0.5 + (c % 2) as f32 * 0.0;
                    if v != 0.0 {
                        vals[code as usize].push(v);
                    }
                }
            }
            let mut keys: Vec<u64> = Vec::new();
            for (g, vs) in vals.iter().enumerate() {
                keys.extend(vs.iter().map(|&v| ((order_key(v) as u64) << 32) | g as u64));
            }
            let mut scratch = Vec::new();
            radix_sort_by_high_u32(&mut keys, &mut scratch);
            let perts: Vec<usize> = groups.perts().map(|(c, _)| c).collect();
            let mut sweep = RankSweep::new(n_g);
            sweep.reset(&groups, &perts, ctrl, vals[ctrl].len(), |g| vals[g].len(), &keys);
            sweep.run(&keys, ctrl);
            let mut ref_sorted = vals[ctrl].clone();
            ref_sorted.sort_unstable_by(|a, b| a.total_cmp(b));
            let ctrl_tie = tie_term_sorted(&ref_sorted);
            for &g in &perts {
                let mut t = vals[g].clone();
                t.sort_unstable_by(|a, b| a.total_cmp(b));
                let (n_a, n_b) = (groups.counts[g], groups.counts[ctrl]);
                let nz = n_a + n_b - t.len() - ref_sorted.len();
                let (r1, tie) = rank_sum_vs_sorted(&t, &ref_sorted, nz, n_a - t.len(), ctrl_tie);
                assert_eq!(sweep.r1[g].to_bits(), r1.to_bits(), "trial {trial} group {g}: r1");
                assert_eq!(sweep.tie[g].to_bits(), tie.to_bits(), "trial {trial} group {g}: tie");
            }
        }
    }
    use crate::stats::rank_average;
    use scale_io::{CsrMatrix, DenseMatrix};

    /// Reference: rank the concatenation directly.
    fn brute(t: &[f64], c: &[f64]) -> (f64, f64) {
        let all: Vec<f64> = t.iter().chain(c).copied().collect();
        let r = rank_average(&all);
        let r1: f64 = r[..t.len()].iter().sum();
        let mut s = all.clone();
        s.sort_by(|a, b| a.total_cmp(b));
        let mut tie = 0.0;
        let mut i = 0;
        while i < s.len() {
            let mut j = i + 1;
            while j < s.len() && s[j] == s[i] {
                j += 1;
            }
            let k = (j - i) as f64;
            tie += k * k * k - k;
            i = j;
        }
        mwu_from_rank_sum(r1, t.len(), c.len(), tie)
    }

    #[test]
    fn sparse_merge_equals_brute_force_ranking() {
        let t = [0.0, 0.0, 1.5, 2.0, 2.0, 3.0, 0.5];
        let c = [0.0, 2.0, 1.5, 0.0, 0.0, 4.0, 2.0, 0.5, 0.5];
        let mut tn: Vec<f32> = t.iter().filter(|&&v| v != 0.0).map(|&v| v as f32).collect();
        let mut cn: Vec<f32> = c.iter().filter(|&&v| v != 0.0).map(|&v| v as f32).collect();
        tn.sort_by(|a, b| a.total_cmp(b));
        cn.sort_by(|a, b| a.total_cmp(b));
        let nz = t.len() + c.len() - tn.len() - cn.len();
        let (r1, tie) = rank_sum_vs_sorted(&tn, &cn, nz, t.len() - tn.len(), tie_term_sorted(&cn));
        let fast = mwu_from_rank_sum(r1, t.len(), c.len(), tie);
        let slow = brute(&t, &c);
        assert_eq!(fast.0, slow.0);
        assert!((fast.1 - slow.1).abs() < 1e-15);
    }

    /// 6 control cells and 3 of "A" over genes g0, g1; gene 1 is zero except `c4_g1` in control cell 4.
    fn six_controls_three_a(c4_g1: f32) -> (DenseMatrix, Groups, Vec<String>) {
        let d = DenseMatrix {
            n_rows: 9,
            n_cols: 2,
            data: vec![
                1.0, 0.0, 0.5, 0.0, 0.0, 0.0, 2.0, 0.0, 0.5, c4_g1, 0.0, 0.0, 3.0, 0.0, 2.5, 0.0, 4.0, 0.0,
            ],
        };
        let labels = ["c", "c", "c", "c", "c", "c", "A", "A", "A"];
        let g = Groups::new(&labels, "c").unwrap();
        (d, g, vec!["g0".to_string(), "g1".to_string()])
    }

    #[test]
    fn dense_and_sparse_inputs_agree_and_zero_genes_are_null() {
        // 6 control cells, 3 of "A"; gene 1 all zero.
        let (d, g, genes) = six_controls_three_a(0.0);
        let dense = differential_expression(&Matrix::Dense(d.clone()), &genes, &g, &crate::NoProgress);
        let csr: CsrMatrix = d.to_csr();
        let sparse = differential_expression(&Matrix::Csr(csr), &genes, &g, &crate::NoProgress);
        let (bd, bs) = (&dense.blocks[0], &sparse.blocks[0]);
        assert_eq!(bd.p_value, bs.p_value);
        assert_eq!(bd.statistic, bs.statistic);
        // all-zero gene: p = 1, lfc 0 (0/0), U = n1*n2/2
        assert_eq!(bs.p_value[1], 1.0);
        assert_eq!(bs.log2_fold_change[1], 0.0);
        assert_eq!(bs.statistic[1], 9.0);
        let (u, p) = brute(&[3.0, 2.5, 4.0], &[1.0, 0.5, 0.0, 2.0, 0.5, 0.0]);
        assert_eq!(bs.statistic[0], u);
        assert!((bs.p_value[0] - p).abs() < 1e-15);
    }

    /// After `keep_metric_columns` the metrics' columns are intact and writing the table is an
    /// error, not a panic or a short file.
    #[test]
    fn trimmed_table_keeps_metric_columns_and_refuses_to_be_written() {
        let (d, g, genes) = six_controls_three_a(1.0);
        let mut t = differential_expression(&Matrix::Dense(d), &genes, &g, &crate::NoProgress);
        let (lfc, fdr, feature) = (
            t.blocks[0].log2_fold_change.clone(),
            t.blocks[0].fdr.clone(),
            t.blocks[0].feature.clone(),
        );
        let dir = tempfile::tempdir().unwrap();
        t.write_csv(&dir.path().join("whole.csv")).unwrap();
        t.keep_metric_columns();
        let b = &t.blocks[0];
        assert_eq!((&b.log2_fold_change, &b.fdr, &b.feature), (&lfc, &fdr, &feature));
        assert!(b.p_value.is_empty() && b.target_mean.is_empty());
        let path = dir.path().join("trimmed.csv");
        assert!(matches!(t.write_csv(&path), Err(EvalError::DeMismatch(_))));
        assert!(!path.exists());
    }

    #[test]
    fn one_sided_zero_gives_infinite_lfc() {
        assert_eq!(log2_fc(1.0, 0.0), f64::INFINITY);
        assert_eq!(log2_fc(0.0, 1.0), f64::NEG_INFINITY);
        assert_eq!(log2_fc(0.0, 0.0), 0.0);
        assert_eq!(pct_change(0.0, 0.0), 0.0);
    }

    #[test]
    fn gallop_equals_partition_point() {
        let s: Vec<f32> = [0.5f32, 0.5, 1.0, 1.5, 1.5, 1.5, 2.0, 3.0, 3.0, 4.0, 7.0, 9.0, 9.0].to_vec();
        for start in 0..=s.len() {
            for v in [0.0f32, 0.5, 0.7, 1.5, 3.0, 8.0, 9.0, 10.0] {
                for strict in [true, false] {
                    let pred = |c: f32| if strict { c < v } else { c <= v };
                    // only meaningful when s[..start] already satisfies pred, as in the merge
                    if s[..start].iter().all(|&c| pred(c)) {
                        assert_eq!(gallop(&s, start, pred), s.partition_point(|&c| pred(c)), "{start} {v}");
                    }
                }
            }
        }
    }
}
