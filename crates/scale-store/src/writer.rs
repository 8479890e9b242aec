//! `ingest`: inputs → a store directory, with bounded memory.
//!
//! Pass 1 streams every source once in row blocks: genes are remapped to the store's gene list, values
//! optionally normalised, and each row is appended to spill files in input order (its label codes and
//! name kept in memory: a few bytes per cell). Then cells are counting-sorted by (dataset, context,
//! perturbation, batch) and pass 2 copies each row from the spill files (positioned reads, not a memory
//! map, so the page cache and not the process holds the data) into the final arrays in group order,
//! hashing them on the way. Everything is built in `OUT.tmp-<pid>` and renamed at the end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use scale_io::{ExpressionSpace, Matrix};
use xxhash_rust::xxh3::Xxh3;

use crate::error::{preview, StoreError};
use crate::manifest::*;
use crate::source::CellSource;

/// How to combine differing gene lists of several inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeneMode {
    /// Every input has the same gene set (order may differ; columns are remapped by name).
    Strict,
    /// Genes present in every input, in the first input's order.
    Intersection,
    /// All genes (first input's order, then new ones in order of appearance); absent genes are zeros.
    Union,
}

impl GeneMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "strict" => Some(Self::Strict),
            "intersection" => Some(Self::Intersection),
            "union" => Some(Self::Union),
            _ => None,
        }
    }
}

/// (source, context, perturbation, dose bits, batch): cells sharing a key form one group.
type GroupKey = (u32, u32, u32, u32, u32);

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub genes: GeneMode,
    /// normalize_total to this sum per cell (before log1p); input must be raw counts.
    pub target_sum: Option<f64>,
    pub log1p: bool,
    /// Replace an existing store at the output path.
    pub overwrite: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            genes: GeneMode::Strict,
            target_sum: None,
            log1p: false,
            overwrite: false,
        }
    }
}

/// Removes the temporary directory unless the build completed.
struct TmpDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A buffered file writer that hashes what it writes.
struct HashedFile {
    name: &'static str,
    path: PathBuf,
    w: BufWriter<File>,
    hasher: Xxh3,
    bytes: u64,
}

impl HashedFile {
    fn create(dir: &Path, name: &'static str) -> Result<Self, StoreError> {
        let path = dir.join(name);
        let f = File::create(&path).map_err(|e| StoreError::io(&path, e))?;
        Ok(Self {
            name,
            path,
            w: BufWriter::with_capacity(1 << 20, f),
            hasher: Xxh3::new(),
            bytes: 0,
        })
    }

    fn write(&mut self, b: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(b);
        self.bytes += b.len() as u64;
        self.w.write_all(b).map_err(|e| StoreError::io(&self.path, e))
    }

    fn finish(mut self) -> Result<Checksum, StoreError> {
        self.w.flush().map_err(|e| StoreError::io(&self.path, e))?;
        Ok(Checksum {
            file: self.name.to_string(),
            bytes: self.bytes,
            xxh3_64: format!("{:016x}", self.hasher.digest()),
        })
    }
}

/// Appends one sparse row to the spill files and records where it ends.
fn spill_sparse_row(
    (a, a_path): (&mut BufWriter<File>, &Path),
    (b, b_path): (&mut BufWriter<File>, &Path),
    ptr: &mut Vec<u64>,
    cols: &[u32],
    vals: &[f32],
) -> Result<(), StoreError> {
    a.write_all(u32_bytes(cols)).map_err(|e| StoreError::io(a_path, e))?;
    b.write_all(f32_bytes(vals)).map_err(|e| StoreError::io(b_path, e))?;
    let last = *ptr.last().unwrap_or(&0);
    ptr.push(last + cols.len() as u64);
    Ok(())
}

fn u32_bytes(v: &[u32]) -> &[u8] {
    // SAFETY: u32 has no padding or invalid bit patterns; the store is little-endian (checked on open).
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

fn f32_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: as above.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

/// The same rule as `scale_io::detect_space_of_values`, accumulated over a stream.
#[derive(Debug, Clone)]
pub(crate) struct SpaceAcc {
    all_integral: bool,
    min: f32,
    max: f32,
    any: bool,
}

impl SpaceAcc {
    pub(crate) fn new() -> Self {
        Self {
            all_integral: true,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            any: false,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, v: f32) {
        self.any = true;
        self.all_integral &= v.fract() <= scale_io::space::COUNT_FRACTION_TOLERANCE;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    pub(crate) fn space(&self) -> ExpressionSpace {
        if !self.any {
            ExpressionSpace::Log1p
        } else if self.min < 0.0 {
            ExpressionSpace::Other
        } else if self.all_integral {
            ExpressionSpace::RawCounts
        } else if self.max < scale_io::space::LOG1P_MAX {
            ExpressionSpace::Log1p
        } else {
            ExpressionSpace::Other
        }
    }
}

/// Store gene list and, per source, the store column of each source column (`u32::MAX`: dropped).
fn align_genes(
    sources: &[Box<dyn CellSource>],
    mode: GeneMode,
    notes: &mut Vec<String>,
) -> Result<(Vec<String>, Vec<Vec<u32>>), StoreError> {
    let first = sources[0].genes();
    let genes: Vec<String> = match mode {
        GeneMode::Strict => {
            let set0: HashSet<&str> = first.iter().map(|s| s.as_str()).collect();
            for s in &sources[1..] {
                let set: HashSet<&str> = s.genes().iter().map(|g| g.as_str()).collect();
                let missing: Vec<&str> = first.iter().map(|g| g.as_str()).filter(|g| !set.contains(g)).collect();
                let extra: Vec<&str> = s
                    .genes()
                    .iter()
                    .map(|g| g.as_str())
                    .filter(|g| !set0.contains(g))
                    .collect();
                if !missing.is_empty() || !extra.is_empty() {
                    return Err(StoreError::GenesDiffer {
                        input: s.inputs().join(","),
                        n_missing: missing.len(),
                        missing: preview(&missing, 5),
                        n_extra: extra.len(),
                        extra: preview(&extra, 5),
                    });
                }
            }
            first.to_vec()
        }
        GeneMode::Intersection => {
            let sets: Vec<HashSet<&str>> = sources[1..]
                .iter()
                .map(|s| s.genes().iter().map(|g| g.as_str()).collect())
                .collect();
            let g: Vec<String> = first
                .iter()
                .filter(|g| sets.iter().all(|s| s.contains(g.as_str())))
                .cloned()
                .collect();
            if g.is_empty() {
                return Err(StoreError::EmptyGeneIntersection);
            }
            g
        }
        GeneMode::Union => {
            let mut seen: HashSet<String> = HashSet::new();
            let mut g = Vec::new();
            for s in sources {
                for name in s.genes() {
                    if seen.insert(name.clone()) {
                        g.push(name.clone());
                    }
                }
            }
            g
        }
    };
    let pos: HashMap<&str, u32> = genes.iter().enumerate().map(|(i, g)| (g.as_str(), i as u32)).collect();
    let maps: Vec<Vec<u32>> = sources
        .iter()
        .map(|s| {
            s.genes()
                .iter()
                .map(|g| pos.get(g.as_str()).copied().unwrap_or(u32::MAX))
                .collect()
        })
        .collect();
    if sources.len() > 1 {
        notes.push(format!(
            "genes: {} mode, {} genes in the store",
            match mode {
                GeneMode::Strict => "strict",
                GeneMode::Intersection => "intersection",
                GeneMode::Union => "union",
            },
            genes.len()
        ));
    }
    Ok((genes, maps))
}

/// Builds a store at `out` from `sources`. `progress(phase, cells_done)` is called now and then.
pub fn ingest(
    mut sources: Vec<Box<dyn CellSource>>,
    out: &Path,
    opts: &IngestOptions,
    progress: &dyn Fn(&str, u64),
) -> Result<Manifest, StoreError> {
    if sources.is_empty() {
        return Err(StoreError::Empty("no inputs given".into()));
    }
    if out.exists() && !opts.overwrite {
        return Err(StoreError::Exists {
            path: out.to_path_buf(),
        });
    }
    // Consistency of the inputs before any work.
    let mut names = HashSet::new();
    for s in &sources {
        if !names.insert(s.dataset().to_string()) {
            return Err(StoreError::BadInput {
                input: s.inputs().join(","),
                message: format!(
                    "dataset name `{}` is used by two inputs; give each a distinct --dataset-name",
                    s.dataset()
                ),
            });
        }
    }
    let dense = sources[0].is_dense();
    let control = sources[0].labels().control.clone();
    for s in &sources[1..] {
        if s.is_dense() != dense {
            return Err(StoreError::BadInput {
                input: s.inputs().join(","),
                message: "mixes embedding (obsm) and expression inputs; ingest them into separate stores".into(),
            });
        }
        if s.labels().control != control {
            return Err(StoreError::BadInput {
                input: s.inputs().join(","),
                message: format!(
                    "control label `{}` differs from the first input's `{control}`",
                    s.labels().control
                ),
            });
        }
    }
    if dense && opts.genes == GeneMode::Union {
        return Err(StoreError::BadInput {
            input: sources[0].inputs().join(","),
            message: "--genes union would pad embeddings with zeros; use strict or intersection".into(),
        });
    }
    if opts.target_sum.is_some() && dense {
        return Err(StoreError::BadInput {
            input: sources[0].inputs().join(","),
            message: "--normalize applies to expression counts, not obsm embeddings".into(),
        });
    }
    let mut notes = Vec::new();
    let (genes, col_maps) = align_genes(&sources, opts.genes, &mut notes)?;
    let n_features = genes.len();

    let file_name = out
        .file_name()
        .ok_or_else(|| StoreError::BadInput {
            input: out.display().to_string(),
            message: "output path has no file name".into(),
        })?
        .to_string_lossy()
        .to_string();
    let tmp_path = out.with_file_name(format!("{file_name}.tmp-{}", std::process::id()));
    if tmp_path.exists() {
        std::fs::remove_dir_all(&tmp_path).map_err(|e| StoreError::io(&tmp_path, e))?;
    }
    std::fs::create_dir_all(&tmp_path).map_err(|e| StoreError::io(&tmp_path, e))?;
    let mut tmp = TmpDir {
        path: tmp_path.clone(),
        keep: false,
    };

    // ---- pass 1: stream every source into the spill files ----
    let spill_a_path = tmp_path.join("spill.a");
    let spill_b_path = tmp_path.join("spill.b");
    let mut spill_a = BufWriter::with_capacity(
        1 << 20,
        File::create(&spill_a_path).map_err(|e| StoreError::io(&spill_a_path, e))?,
    );
    let mut spill_b = BufWriter::with_capacity(
        1 << 20,
        File::create(&spill_b_path).map_err(|e| StoreError::io(&spill_b_path, e))?,
    );
    // Per cell: spill offset (in elements), local label codes, source, name.
    let mut spill_ptr: Vec<u64> = vec![0];
    let mut cell_src: Vec<u16> = Vec::new();
    let mut cell_pert: Vec<u32> = Vec::new();
    let mut cell_ctx: Vec<u32> = Vec::new();
    let mut cell_batch: Vec<u32> = Vec::new();
    let mut cell_dose: Vec<f32> = Vec::new();
    let mut cell_names: Vec<String> = Vec::new();
    let mut acc = SpaceAcc::new();
    let mut datasets = Vec::new();
    let mut src_vocabs = Vec::new();
    let mut cols: Vec<u32> = Vec::new();
    let mut vals: Vec<f32> = Vec::new();
    let mut pairs: Vec<(u32, f32)> = Vec::new();
    let mut dense_row: Vec<f32> = vec![0.0; if dense { n_features } else { 0 }];
    let mut n_total: u64 = 0;
    for (si, src) in sources.iter_mut().enumerate() {
        let input = src.inputs().join(",");
        let map = &col_maps[si];
        let n_dropped = map.iter().filter(|&&m| m == u32::MAX).count();
        let n_missing = n_features - (map.len() - n_dropped);
        let mut n_src: u64 = 0;
        while let Some(block) = src.next_block()? {
            let n = block.rows.n_rows();
            if block.pert.len() != n
                || block.dose.len() != n
                || block.cell_names.len() != n
                || block.rows.n_cols() != map.len()
            {
                return Err(StoreError::BadInput {
                    input: input.clone(),
                    message: format!(
                        "block of {n} rows × {} columns with {} labels and {} names; expected {} columns",
                        block.rows.n_cols(),
                        block.pert.len(),
                        block.cell_names.len(),
                        map.len()
                    ),
                });
            }
            let row0 = n_src as usize;
            match &block.rows {
                Matrix::Csr(m) if !dense => {
                    for r in 0..n {
                        let (c, v) = m.row(r);
                        write_sparse_row(
                            &input,
                            row0 + r,
                            c,
                            v,
                            map,
                            opts,
                            &mut acc,
                            (&mut cols, &mut vals, &mut pairs),
                        )?;
                        spill_sparse_row(
                            (&mut spill_a, &spill_a_path),
                            (&mut spill_b, &spill_b_path),
                            &mut spill_ptr,
                            &cols,
                            &vals,
                        )?;
                    }
                }
                Matrix::Dense(m) if !dense => {
                    // Non-zeros of one dense row, reused across rows.
                    let (mut nzc, mut nzv) = (Vec::<u32>::new(), Vec::<f32>::new());
                    for r in 0..n {
                        cols.clear();
                        vals.clear();
                        let row = m.row(r);
                        nzc.clear();
                        nzc.extend((0..m.n_cols as u32).filter(|&c| row[c as usize] != 0.0));
                        nzv.clear();
                        nzv.extend(nzc.iter().map(|&c| row[c as usize]));
                        write_sparse_row(
                            &input,
                            row0 + r,
                            &nzc,
                            &nzv,
                            map,
                            opts,
                            &mut acc,
                            (&mut cols, &mut vals, &mut pairs),
                        )?;
                        spill_sparse_row(
                            (&mut spill_a, &spill_a_path),
                            (&mut spill_b, &spill_b_path),
                            &mut spill_ptr,
                            &cols,
                            &vals,
                        )?;
                    }
                }
                other => {
                    // Embeddings: dense rows of the store's feature order.
                    let m = other.to_dense();
                    for r in 0..n {
                        dense_row.iter_mut().for_each(|x| *x = 0.0);
                        for (c, &v) in m.row(r).iter().enumerate() {
                            if !v.is_finite() {
                                return Err(StoreError::BadValue {
                                    input: input.clone(),
                                    row: row0 + r,
                                    col: c,
                                    value: v,
                                    problem: "not finite".into(),
                                });
                            }
                            let t = map[c];
                            if t != u32::MAX {
                                dense_row[t as usize] = v;
                            }
                        }
                        dense_row.iter().for_each(|&v| acc.push(v));
                        spill_b
                            .write_all(f32_bytes(&dense_row))
                            .map_err(|e| StoreError::io(&spill_b_path, e))?;
                        let last = *spill_ptr.last().unwrap_or(&0);
                        spill_ptr.push(last + n_features as u64);
                    }
                }
            }
            cell_pert.extend_from_slice(&block.pert);
            cell_ctx.extend_from_slice(&block.context);
            cell_batch.extend_from_slice(&block.batch);
            cell_dose.extend_from_slice(&block.dose);
            cell_src.extend(std::iter::repeat_n(si as u16, n));
            cell_names.extend(block.cell_names);
            n_src += n as u64;
            n_total += n as u64;
            progress("read", n_total);
        }
        if n_src == 0 {
            return Err(StoreError::Empty(format!("{input} has no cells")));
        }
        datasets.push(DatasetInfo {
            name: src.dataset().to_string(),
            inputs: src.inputs(),
            source: src.source_desc(),
            n_cells: n_src,
            n_genes_dropped: n_dropped,
            n_genes_missing: n_missing,
        });
        notes.extend(src.notes());
        src_vocabs.push(src.vocabs());
    }
    spill_a.flush().map_err(|e| StoreError::io(&spill_a_path, e))?;
    spill_b.flush().map_err(|e| StoreError::io(&spill_b_path, e))?;
    drop(spill_a);
    drop(spill_b);
    let n_cells = cell_names.len();
    if n_cells > u32::MAX as usize {
        return Err(StoreError::BadInput {
            input: "inputs".into(),
            message: format!("{n_cells} cells exceed the store's limit of 2^32 - 1"),
        });
    }

    // ---- labels: global vocabularies, control check, groups ----
    let multi = sources.len() > 1;
    let mut used: Vec<[HashSet<u32>; 3]> = vec![Default::default(); sources.len()];
    for i in 0..n_cells {
        let u = &mut used[cell_src[i] as usize];
        u[0].insert(cell_pert[i]);
        u[1].insert(cell_ctx[i]);
        u[2].insert(cell_batch[i]);
    }
    let mut pert_set = std::collections::BTreeSet::new();
    let mut ctx_set = std::collections::BTreeSet::new();
    let mut batch_set = std::collections::BTreeSet::new();
    for (si, v) in src_vocabs.iter().enumerate() {
        let src_perts: Vec<&str> = used[si][0].iter().map(|&c| v.pert[c as usize].as_str()).collect();
        if !src_perts.contains(&control.as_str()) {
            let mut seen = src_perts.clone();
            seen.sort();
            return Err(StoreError::UnknownControl {
                input: sources[si].inputs().join(","),
                column: sources[si].labels().pert_col.clone(),
                label: control.clone(),
                seen: preview(&seen, 12),
            });
        }
        pert_set.extend(src_perts.iter().map(|s| s.to_string()));
        ctx_set.extend(used[si][1].iter().map(|&c| v.context[c as usize].clone()));
        batch_set.extend(
            used[si][2]
                .iter()
                .map(|&c| qualify(multi, &datasets[si].name, &v.batch[c as usize])),
        );
    }
    let perts: Vec<String> = pert_set.into_iter().collect();
    let contexts: Vec<String> = ctx_set.into_iter().collect();
    let batches: Vec<String> = batch_set.into_iter().collect();
    let find = |list: &[String], s: &str| list.binary_search_by(|x| x.as_str().cmp(s)).map(|i| i as u32);
    // Local code → global code, per source.
    let remap: Vec<[Vec<u32>; 3]> = src_vocabs
        .iter()
        .enumerate()
        .map(|(si, v)| {
            [
                v.pert.iter().map(|p| find(&perts, p).unwrap_or(u32::MAX)).collect(),
                v.context
                    .iter()
                    .map(|c| find(&contexts, c).unwrap_or(u32::MAX))
                    .collect(),
                v.batch
                    .iter()
                    .map(|b| find(&batches, &qualify(multi, &datasets[si].name, b)).unwrap_or(u32::MAX))
                    .collect(),
            ]
        })
        .collect();
    let control_pert = find(&perts, &control).map_err(|_| StoreError::UnknownControl {
        input: "inputs".into(),
        column: sources[0].labels().pert_col.clone(),
        label: control.clone(),
        seen: preview(&perts, 12),
    })?;
    // Doses are finite and >= 0 (checked by the sources), so their bit patterns order as the values.
    let key_of = |i: usize| -> GroupKey {
        let s = cell_src[i] as usize;
        let r = &remap[s];
        (
            s as u32,
            r[1][cell_ctx[i] as usize],
            r[0][cell_pert[i] as usize],
            cell_dose[i].to_bits(),
            r[2][cell_batch[i] as usize],
        )
    };
    let mut counts: BTreeMap<GroupKey, u64> = BTreeMap::new();
    for i in 0..n_cells {
        *counts.entry(key_of(i)).or_insert(0) += 1;
    }
    // Every (dataset, context) with perturbed cells needs controls to pair with.
    let with_controls: HashSet<(u32, u32)> = counts
        .keys()
        .filter(|k| k.2 == control_pert)
        .map(|k| (k.0, k.1))
        .collect();
    for k in counts.keys() {
        if !with_controls.contains(&(k.0, k.1)) {
            return Err(StoreError::NoControls {
                input: datasets[k.0 as usize].inputs.join(","),
                context: contexts[k.1 as usize].clone(),
                control: control.clone(),
            });
        }
    }
    let mut groups = Vec::with_capacity(counts.len());
    let mut gid: HashMap<GroupKey, u32> = HashMap::with_capacity(counts.len());
    let mut offset = 0u64;
    let mut pert_counts = vec![0u64; perts.len()];
    for (g, (k, &n)) in counts.iter().enumerate() {
        groups.push(GroupInfo {
            dataset: k.0,
            context: k.1,
            pert: k.2,
            dose: f32::from_bits(k.3),
            batch: k.4,
            offset,
            n_cells: n,
        });
        pert_counts[k.2 as usize] += n;
        gid.insert(*k, g as u32);
        offset += n;
    }
    // Counting sort, stable within a group (input order kept).
    let mut next: Vec<u64> = groups.iter().map(|g| g.offset).collect();
    let mut order: Vec<u32> = vec![0; n_cells];
    for i in 0..n_cells {
        let g = gid[&key_of(i)] as usize;
        order[next[g] as usize] = i as u32;
        next[g] += 1;
    }
    drop(gid);
    drop(cell_pert);
    drop(cell_ctx);
    drop(cell_batch);
    drop(cell_dose);
    check_unique_names(&cell_names, &cell_src, &datasets)?;

    // ---- pass 2: group-ordered arrays ----
    let fa = File::open(&spill_a_path).map_err(|e| StoreError::io(&spill_a_path, e))?;
    let fb = File::open(&spill_b_path).map_err(|e| StoreError::io(&spill_b_path, e))?;
    let mut checksums = Vec::new();
    let nnz = spill_ptr[n_cells];
    if dense {
        let mut out_d = HashedFile::create(&tmp_path, DENSE_FILE)?;
        let mut buf = vec![0u8; n_features * 4];
        for (k, &i) in order.iter().enumerate() {
            let a = spill_ptr[i as usize] * 4;
            fb.read_exact_at(&mut buf, a)
                .map_err(|e| StoreError::io(&spill_b_path, e))?;
            out_d.write(&buf)?;
            if k % 65536 == 0 {
                progress("write", k as u64);
            }
        }
        checksums.push(out_d.finish()?);
    } else {
        let mut out_p = HashedFile::create(&tmp_path, INDPTR_FILE)?;
        let mut out_i = HashedFile::create(&tmp_path, INDICES_FILE)?;
        let mut out_v = HashedFile::create(&tmp_path, DATA_FILE)?;
        let mut buf = Vec::new();
        let mut ptr = 0u64;
        out_p.write(&ptr.to_le_bytes())?;
        for (k, &i) in order.iter().enumerate() {
            let (a, b) = (spill_ptr[i as usize], spill_ptr[i as usize + 1]);
            let len = ((b - a) * 4) as usize;
            buf.resize(len, 0);
            fa.read_exact_at(&mut buf, a * 4)
                .map_err(|e| StoreError::io(&spill_a_path, e))?;
            out_i.write(&buf)?;
            fb.read_exact_at(&mut buf, a * 4)
                .map_err(|e| StoreError::io(&spill_b_path, e))?;
            out_v.write(&buf)?;
            ptr += b - a;
            out_p.write(&ptr.to_le_bytes())?;
            if k % 65536 == 0 {
                progress("write", k as u64);
            }
        }
        checksums.push(out_p.finish()?);
        checksums.push(out_i.finish()?);
        checksums.push(out_v.finish()?);
    }
    drop(fa);
    drop(fb);
    let _ = std::fs::remove_file(&spill_a_path);
    let _ = std::fs::remove_file(&spill_b_path);
    {
        let mut out_c = HashedFile::create(&tmp_path, CELLS_FILE)?;
        for &i in &order {
            out_c.write(cell_names[i as usize].as_bytes())?;
            out_c.write(b"\n")?;
        }
        checksums.push(out_c.finish()?);
    }
    progress("write", n_cells as u64);

    let first = sources[0].labels();
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        layout: if dense { Layout::Dense } else { Layout::Sparse },
        n_cells: n_cells as u64,
        nnz,
        genes,
        space: acc.space(),
        normalization: Normalization {
            target_sum: opts.target_sum,
            log1p: opts.log1p,
        },
        pert_col: first.pert_col.clone(),
        context_col: first.context_col.clone(),
        batch_col: first.batch_col.clone(),
        dose_col: sources.iter().find_map(|s| s.labels().dose_col.clone()),
        control_label: control,
        perts,
        pert_counts,
        control_pert,
        contexts,
        batches,
        datasets,
        groups,
        checksums,
        notes,
    };
    let mpath = tmp_path.join(MANIFEST_FILE);
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| StoreError::Manifest {
        path: mpath.clone(),
        source: e,
    })?;
    std::fs::write(&mpath, json).map_err(|e| StoreError::io(&mpath, e))?;
    if out.exists() {
        // Only reached with `overwrite`.
        std::fs::remove_dir_all(out).map_err(|e| StoreError::io(out, e))?;
    }
    std::fs::rename(&tmp_path, out).map_err(|e| StoreError::io(out, e))?;
    tmp.keep = true;
    tracing::info!(
        cells = n_cells,
        groups = manifest.groups.len(),
        genes = n_features,
        space = %manifest.space,
        "store written to {}",
        out.display()
    );
    Ok(manifest)
}

fn qualify(multi: bool, dataset: &str, batch: &str) -> String {
    if multi {
        format!("{dataset}/{batch}")
    } else {
        batch.to_string()
    }
}

/// Remaps, checks, normalises one sparse row into `cols`/`vals` (sorted by store column).
#[allow(clippy::too_many_arguments)]
fn write_sparse_row(
    input: &str,
    row: usize,
    c: &[u32],
    v: &[f32],
    map: &[u32],
    opts: &IngestOptions,
    acc: &mut SpaceAcc,
    bufs: (&mut Vec<u32>, &mut Vec<f32>, &mut Vec<(u32, f32)>),
) -> Result<(), StoreError> {
    let (cols, vals, pairs) = bufs;
    cols.clear();
    vals.clear();
    pairs.clear();
    let mut total = 0f64;
    for (&ci, &vi) in c.iter().zip(v) {
        if !vi.is_finite() {
            return Err(StoreError::BadValue {
                input: input.to_string(),
                row,
                col: ci as usize,
                value: vi,
                problem: "not finite".into(),
            });
        }
        if opts.target_sum.is_some() && (vi < 0.0 || vi.fract() > scale_io::space::COUNT_FRACTION_TOLERANCE) {
            return Err(StoreError::NormalizeNeedsCounts {
                input: input.to_string(),
                space: format!("non-count (value {vi} at cell {row}, gene {ci})"),
            });
        }
        total += vi as f64;
        let t = map.get(ci as usize).copied().unwrap_or(u32::MAX);
        if t != u32::MAX && vi != 0.0 {
            pairs.push((t, vi));
        }
    }
    if !pairs.windows(2).all(|w| w[0].0 < w[1].0) {
        pairs.sort_by_key(|p| p.0);
    }
    // normalize_total uses the cell's full depth (all genes of the input), as scanpy does before any gene
    // subsetting.
    let scale = match opts.target_sum {
        Some(t) if total > 0.0 => Some((t / total) as f32),
        _ => None,
    };
    for &(t, mut x) in pairs.iter() {
        if let Some(s) = scale {
            x *= s;
        }
        if opts.log1p {
            x = x.ln_1p();
        }
        acc.push(x);
        cols.push(t);
        vals.push(x);
    }
    Ok(())
}

fn check_unique_names(names: &[String], src: &[u16], datasets: &[DatasetInfo]) -> Result<(), StoreError> {
    let mut idx: Vec<u32> = (0..names.len() as u32).collect();
    idx.sort_unstable_by(|&a, &b| names[a as usize].cmp(&names[b as usize]));
    for w in idx.windows(2) {
        let (a, b) = (w[0] as usize, w[1] as usize);
        if names[a] == names[b] {
            let (a, b) = (a.min(b), a.max(b));
            return Err(StoreError::DuplicateCell {
                cell: names[a].clone(),
                first: datasets[src[a] as usize].inputs.join(","),
                second: datasets[src[b] as usize].inputs.join(","),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_space_matches_scale_io_rule() {
        let cases: [&[f32]; 6] = [
            &[0.0, 3.0, 17.0],
            &[2.0005, 4.0],
            &[0.0, 0.69, 2.3],
            &[0.5, 200.5],
            &[-0.5, 1.5],
            &[],
        ];
        for vals in cases {
            let mut acc = SpaceAcc::new();
            // Split in two "blocks" to exercise accumulation.
            let (a, b) = vals.split_at(vals.len() / 2);
            a.iter().chain(b).for_each(|&v| acc.push(v));
            assert_eq!(acc.space(), scale_io::space::detect_space_of_values(vals), "{vals:?}");
        }
    }

    #[test]
    fn gene_mode_names() {
        assert_eq!(GeneMode::parse("union"), Some(GeneMode::Union));
        assert_eq!(GeneMode::parse("inner"), None);
    }
}
