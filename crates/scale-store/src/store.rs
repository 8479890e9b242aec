//! Reading a store: memory-mapped arrays plus the manifest. Cheap to open; `Arc<Store>` is shared by the
//! sampler's worker threads (reads only).

use std::fs::File;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::Mmap;
use scale_io::{CsrMatrix, DenseMatrix};
use xxhash_rust::xxh3::Xxh3;

use crate::error::StoreError;
use crate::manifest::*;

/// A read-only memory map; empty files are not mapped (mmap of length 0 fails).
struct Mapped {
    map: Option<Mmap>,
}

impl Mapped {
    fn open(dir: &Path, name: &str, expected_bytes: u64) -> Result<Self, StoreError> {
        let path = dir.join(name);
        let f = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
        let len = f.metadata().map_err(|e| StoreError::io(&path, e))?.len();
        if len != expected_bytes {
            return Err(StoreError::Corrupt {
                path: dir.to_path_buf(),
                file: name.to_string(),
                message: format!("{len} bytes, manifest implies {expected_bytes}"),
            });
        }
        if len == 0 {
            return Ok(Self { map: None });
        }
        // SAFETY: the store is immutable once renamed into place; a concurrent writer replacing files
        // would be a user error we cannot guard against (as with any mmap reader).
        let map = unsafe { Mmap::map(&f) }.map_err(|e| StoreError::io(&path, e))?;
        Ok(Self { map: Some(map) })
    }

    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Drops this process's page-table entries for the mapping; the data stays in the page cache and
    /// is faulted back in on the next access. Bounds the resident set of long sampling runs over stores
    /// larger than the memory budget.
    fn release(&self) {
        if let Some(m) = &self.map {
            // SAFETY: the mapping is read-only and file-backed (shared), so MADV_DONTNEED discards no
            // data: later reads see the file's contents again.
            let _ = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    /// The mapping as `[T]`. Page-aligned maps satisfy any primitive alignment.
    fn as_slice<T: Copy>(&self) -> &[T] {
        let b = self.bytes();
        if b.is_empty() {
            return &[];
        }
        debug_assert_eq!(b.as_ptr() as usize % std::mem::align_of::<T>(), 0);
        // SAFETY: length is a multiple of size_of::<T>() (checked on open), the pointer is page-aligned
        // and T is a plain number type (u32/u64/f32) valid for every bit pattern.
        unsafe { std::slice::from_raw_parts(b.as_ptr() as *const T, b.len() / std::mem::size_of::<T>()) }
    }
}

pub struct Store {
    dir: PathBuf,
    manifest: Manifest,
    indptr: Mapped,
    indices: Mapped,
    data: Mapped,
    dense: Mapped,
    /// Control groups per context, in group order.
    controls_by_context: Vec<Vec<usize>>,
    /// Bytes read through the maps since the last release, and the release threshold (0: never).
    touched: AtomicU64,
    page_budget: AtomicU64,
}

/// Linux maps up to 16 already-cached pages around a faulting page (`fault_around_bytes`).
const FAULT_AROUND: u64 = 64 << 10;

/// Default resident budget for mapped store pages before they are released (see [`Store::set_page_budget`]).
pub const DEFAULT_PAGE_BUDGET: u64 = 512 << 20;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("n_cells", &self.manifest.n_cells)
            .field("n_groups", &self.manifest.groups.len())
            .finish()
    }
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        if !cfg!(target_endian = "little") {
            return Err(StoreError::NotAStore {
                path: dir.to_path_buf(),
                message: "stores are little-endian; this machine is big-endian".into(),
            });
        }
        let mpath = dir.join(MANIFEST_FILE);
        if !mpath.exists() {
            return Err(StoreError::NotAStore {
                path: dir.to_path_buf(),
                message: format!("no {MANIFEST_FILE}"),
            });
        }
        let text = std::fs::read(&mpath).map_err(|e| StoreError::io(&mpath, e))?;
        // Check the version before the full parse so an old/new format gets the right error.
        #[derive(serde::Deserialize)]
        struct VersionOnly {
            format_version: u32,
        }
        let v: VersionOnly = serde_json::from_slice(&text).map_err(|e| StoreError::Manifest {
            path: dir.to_path_buf(),
            source: e,
        })?;
        if v.format_version != FORMAT_VERSION {
            return Err(StoreError::Version {
                path: dir.to_path_buf(),
                found: v.format_version,
                expected: FORMAT_VERSION,
            });
        }
        let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| StoreError::Manifest {
            path: dir.to_path_buf(),
            source: e,
        })?;
        Self::check_manifest(dir, &manifest)?;
        let n = manifest.n_cells;
        let empty = Mapped { map: None };
        let (indptr, indices, data, dense) = match manifest.layout {
            Layout::Sparse => {
                let indptr = Mapped::open(dir, INDPTR_FILE, (n + 1) * 8)?;
                let indices = Mapped::open(dir, INDICES_FILE, manifest.nnz * 4)?;
                let data = Mapped::open(dir, DATA_FILE, manifest.nnz * 4)?;
                (indptr, indices, data, empty)
            }
            Layout::Dense => {
                let dense = Mapped::open(dir, DENSE_FILE, n * manifest.genes.len() as u64 * 4)?;
                (Mapped { map: None }, Mapped { map: None }, Mapped { map: None }, dense)
            }
        };
        let mut controls_by_context = vec![Vec::new(); manifest.contexts.len()];
        for (g, gi) in manifest.groups.iter().enumerate() {
            if gi.pert == manifest.control_pert {
                controls_by_context[gi.context as usize].push(g);
            }
        }
        let store = Store {
            dir: dir.to_path_buf(),
            manifest,
            indptr,
            indices,
            data,
            dense,
            controls_by_context,
            touched: AtomicU64::new(0),
            page_budget: AtomicU64::new(DEFAULT_PAGE_BUDGET),
        };
        if store.manifest.layout == Layout::Sparse {
            let p: &[u64] = store.indptr.as_slice();
            // Monotone indptr keeps every row slice in bounds (read_row_into indexes without checks).
            if let Some(r) = p.windows(2).position(|w| w[0] > w[1]) {
                return Err(StoreError::Corrupt {
                    path: dir.to_path_buf(),
                    file: INDPTR_FILE.into(),
                    message: format!("indptr decreases at row {r}"),
                });
            }
            if p[0] != 0 || p[n as usize] != store.manifest.nnz {
                return Err(StoreError::Corrupt {
                    path: dir.to_path_buf(),
                    file: INDPTR_FILE.into(),
                    message: format!(
                        "indptr runs {}..{}, expected 0..{}",
                        p[0], p[n as usize], store.manifest.nnz
                    ),
                });
            }
        }
        Ok(store)
    }

    /// Structural checks of the manifest (cheap; array contents are checked by [`Store::verify`]).
    fn check_manifest(dir: &Path, m: &Manifest) -> Result<(), StoreError> {
        let bad = |message: String| StoreError::Corrupt {
            path: dir.to_path_buf(),
            file: MANIFEST_FILE.into(),
            message,
        };
        if m.control_pert as usize >= m.perts.len() {
            return Err(bad(format!("control_pert {} out of range", m.control_pert)));
        }
        let mut offset = 0u64;
        for (g, gi) in m.groups.iter().enumerate() {
            if gi.offset != offset || gi.n_cells == 0 {
                return Err(bad(format!(
                    "group {g} has offset {} / {} cells",
                    gi.offset, gi.n_cells
                )));
            }
            if gi.context as usize >= m.contexts.len()
                || gi.pert as usize >= m.perts.len()
                || gi.batch as usize >= m.batches.len()
                || gi.dataset as usize >= m.datasets.len()
            {
                return Err(bad(format!("group {g} has a label index out of range")));
            }
            if !(gi.dose.is_finite() && gi.dose >= 0.0) {
                return Err(bad(format!("group {g} has dose {}; expected a number >= 0", gi.dose)));
            }
            offset += gi.n_cells;
        }
        if offset != m.n_cells {
            return Err(bad(format!("groups cover {offset} cells, n_cells is {}", m.n_cells)));
        }
        Ok(())
    }

    /// Recomputes every array file's xxh3 checksum and compares with the manifest.
    pub fn verify(&self) -> Result<(), StoreError> {
        for c in &self.manifest.checksums {
            let path = self.dir.join(&c.file);
            let mut f = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
            let mut h = Xxh3::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            loop {
                let n = std::io::Read::read(&mut f, &mut buf).map_err(|e| StoreError::io(&path, e))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                total += n as u64;
            }
            let got = format!("{:016x}", h.digest());
            if got != c.xxh3_64 || total != c.bytes {
                return Err(StoreError::Corrupt {
                    path: self.dir.clone(),
                    file: c.file.clone(),
                    message: format!(
                        "checksum {got} over {total} bytes, manifest says {} over {} bytes",
                        c.xxh3_64, c.bytes
                    ),
                });
            }
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn n_features(&self) -> usize {
        self.manifest.genes.len()
    }

    pub fn n_cells(&self) -> usize {
        self.manifest.n_cells as usize
    }

    pub fn n_groups(&self) -> usize {
        self.manifest.groups.len()
    }

    pub fn group(&self, g: usize) -> Result<&GroupInfo, StoreError> {
        self.manifest.groups.get(g).ok_or(StoreError::NoSuchGroup {
            group: g,
            n_groups: self.manifest.groups.len(),
        })
    }

    /// Cell rows of group `g` in the store.
    pub fn group_rows(&self, g: usize) -> Result<std::ops::Range<usize>, StoreError> {
        let gi = self.group(g)?;
        Ok(gi.offset as usize..(gi.offset + gi.n_cells) as usize)
    }

    /// Control groups of a context (one per batch and dataset), in group order.
    pub fn control_groups(&self, context: u32) -> Vec<usize> {
        self.controls_by_context
            .get(context as usize)
            .cloned()
            .unwrap_or_default()
    }

    /// Mapped pages are released (dropped from this process's resident set, kept in the page cache) after
    /// about `bytes` have been read through the maps; 0 never releases. Reads touch whole pages, so the
    /// resident set of the maps stays within a small multiple of this.
    pub fn set_page_budget(&self, bytes: u64) {
        self.page_budget.store(bytes, Ordering::Relaxed);
    }

    fn mapped_bytes(&self) -> u64 {
        [&self.indptr, &self.indices, &self.data, &self.dense]
            .iter()
            .map(|m| m.bytes().len() as u64)
            .sum()
    }

    /// Records `bytes` read; releases the maps' pages when over budget.
    pub(crate) fn account(&self, bytes: u64) {
        let budget = self.page_budget.load(Ordering::Relaxed);
        // A store whose maps fit in the budget never needs releasing.
        if budget == 0 || self.mapped_bytes() <= budget {
            return;
        }
        let t = self.touched.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if t > budget && self.touched.swap(0, Ordering::Relaxed) > budget {
            self.indptr.release();
            self.indices.release();
            self.data.release();
            self.dense.release();
        }
    }

    /// Bytes of row `cell` in the maps (for [`Store::account`]).
    #[inline]
    pub(crate) fn row_bytes(&self, cell: usize) -> u64 {
        match self.manifest.layout {
            Layout::Sparse => {
                let p: &[u64] = self.indptr.as_slice();
                // A fault maps up to FAULT_AROUND bytes of cached pages around the faulting one (Linux
                // fault-around) in each of the three arrays; rows read close together share those pages, so one
                // window per row is what the resident set grows by on average (measured: docs/bench/store.md).
                (p[cell + 1] - p[cell]) * 8 + FAULT_AROUND
            }
            Layout::Dense => (self.n_features() * 4) as u64 + FAULT_AROUND,
        }
    }

    /// Writes row `cell` densely into `out` (length n_features), overwriting all of it.
    #[inline]
    pub fn read_row_into(&self, cell: usize, out: &mut [f32]) {
        let g = self.n_features();
        debug_assert_eq!(out.len(), g);
        match self.manifest.layout {
            Layout::Sparse => {
                let p: &[u64] = self.indptr.as_slice();
                let (a, b) = (p[cell] as usize, p[cell + 1] as usize);
                let idx: &[u32] = &self.indices.as_slice::<u32>()[a..b];
                let val: &[f32] = &self.data.as_slice::<f32>()[a..b];
                out.fill(0.0);
                for (&c, &v) in idx.iter().zip(val) {
                    // Indices were written < n_features by ingest; `get_mut` keeps a corrupt file from
                    // panicking.
                    if let Some(o) = out.get_mut(c as usize) {
                        *o = v;
                    }
                }
            }
            Layout::Dense => {
                let d: &[f32] = self.dense.as_slice();
                out.copy_from_slice(&d[cell * g..(cell + 1) * g]);
            }
        }
    }

    /// Cells `rows` densely, [rows.len(), n_features].
    pub fn read_rows_dense(&self, rows: std::ops::Range<usize>) -> Result<DenseMatrix, StoreError> {
        if rows.end > self.n_cells() || rows.start > rows.end {
            return Err(StoreError::Sampler(format!(
                "rows {}..{} out of range (store has {} cells)",
                rows.start,
                rows.end,
                self.n_cells()
            )));
        }
        let g = self.n_features();
        let mut m = DenseMatrix::zeros(rows.len(), g);
        let mut bytes = 0;
        for (k, r) in rows.enumerate() {
            self.read_row_into(r, m.row_mut(k));
            bytes += self.row_bytes(r);
        }
        self.account(bytes);
        Ok(m)
    }

    /// Every cell of group `g`, dense [n_cells, n_features].
    pub fn read_group_dense(&self, g: usize) -> Result<DenseMatrix, StoreError> {
        self.read_rows_dense(self.group_rows(g)?)
    }

    /// Every cell of group `g` as CSR (sparse stores; dense stores are converted).
    pub fn read_group_csr(&self, g: usize) -> Result<CsrMatrix, StoreError> {
        let rows = self.group_rows(g)?;
        match self.manifest.layout {
            Layout::Sparse => {
                let p: &[u64] = self.indptr.as_slice();
                let idx: &[u32] = self.indices.as_slice();
                let val: &[f32] = self.data.as_slice();
                let mut m = CsrMatrix::empty(self.n_features());
                for r in rows {
                    let (a, b) = (p[r] as usize, p[r + 1] as usize);
                    m.push_row(&idx[a..b], &val[a..b]);
                }
                Ok(m)
            }
            Layout::Dense => Ok(self.read_rows_dense(rows)?.to_csr()),
        }
    }

    /// Cell names of rows `rows` (reads `cells.txt`; not for hot paths).
    pub fn cell_names(&self, rows: std::ops::Range<usize>) -> Result<Vec<String>, StoreError> {
        let path = self.dir.join(CELLS_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| StoreError::io(&path, e))?;
        let names: Vec<String> = text
            .lines()
            .skip(rows.start)
            .take(rows.len())
            .map(|s| s.to_string())
            .collect();
        if names.len() != rows.len() {
            return Err(StoreError::Corrupt {
                path: self.dir.clone(),
                file: CELLS_FILE.into(),
                message: format!("fewer than {} lines", rows.end),
            });
        }
        Ok(names)
    }
}
