//! Large arrays read straight from the file, in parallel. libhdf5 runs one call at a time (the hdf5
//! crate holds a global lock around it), so reading a 200 MB `X/data` through it keeps one core busy
//! with the kernel's page copies and the buffer's page faults (and, for chunked data, a copy through
//! its chunk cache) while the others wait. An unfiltered little-endian dataset is plain runs of bytes
//! at known file offsets: one run when contiguous (`H5Dget_offset`), one per chunk when chunked, as
//! anndata writes sparse arrays (`H5Dget_chunk_info_by_coord`, libhdf5 >= 1.10.5). Those runs are
//! read here with `pread` on the rayon pool. Anything else (compressed, compact, big-endian, with
//! unallocated chunks, small) goes through libhdf5.

use std::ops::Range;

use hdf5::Dataset;
use rayon::prelude::*;

use super::elem::Src;
use crate::H5adError;

/// Below this many bytes a read stays with libhdf5 (the pool would not pay for itself).
const MIN_BYTES: usize = 4 << 20;
/// Bytes per `pread` (one task of the pool).
const PART: usize = 8 << 20;

/// Element types that any bit pattern of their size is a valid value of.
///
/// # Safety
/// Implementors must be plain data: no padding, no invalid bit patterns.
pub(crate) unsafe trait Plain: Copy + Send + Sync + 'static {
    const ZERO: Self;
}
macro_rules! plain {
    ($($t:ty),*) => { $(
        // SAFETY: a primitive number: every bit pattern is a value.
        unsafe impl Plain for $t { const ZERO: Self = 0 as $t; }
    )* };
}
plain!(f32, f64, i8, i16, i32, i64, u8, u16, u32, u64);

/// Elements `range` of `ds`, stored as `S` (the caller has matched the dtype's class and size),
/// read straight from the file; `None` when the dataset is not one plain little-endian run.
pub(crate) fn read_plain<S: Plain>(
    src: Src,
    ds: &Dataset,
    path: &str,
    range: Range<usize>,
) -> Result<Option<Vec<S>>, H5adError> {
    read_plain_above(src, ds, path, range, MIN_BYTES, Vec::new())
}

/// [`read_plain`] into `reuse`'s memory where it is large enough. Pages a process already holds are
/// written in place, where fresh ones are faulted in and zeroed by the kernel first (on the 18,000-gene
/// benchmark the two X reads were half of all page faults of `scale eval`).
pub(crate) fn read_plain_reusing<S: Plain>(
    src: Src,
    ds: &Dataset,
    path: &str,
    range: Range<usize>,
    reuse: Vec<S>,
) -> Result<Option<Vec<S>>, H5adError> {
    read_plain_above(src, ds, path, range, MIN_BYTES, reuse)
}

/// The same vector as elements of another plain type of the same size and alignment (int32 indices
/// kept as u32, say).
pub(crate) fn cast_vec<A: Plain, B: Plain>(v: Vec<A>) -> Vec<B> {
    assert!(
        std::mem::size_of::<A>() == std::mem::size_of::<B>() && std::mem::align_of::<A>() == std::mem::align_of::<B>()
    );
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: same size and alignment, so the allocation's layout is unchanged, and any bits are a
    // valid `B` (plain data).
    unsafe { Vec::from_raw_parts(v.as_mut_ptr() as *mut B, v.len(), v.capacity()) }
}

/// [`read_plain`] for reads of at least `min_bytes`, into `reuse` where it is large enough.
fn read_plain_above<S: Plain>(
    src: Src,
    ds: &Dataset,
    path: &str,
    range: Range<usize>,
    min_bytes: usize,
    reuse: Vec<S>,
) -> Result<Option<Vec<S>>, H5adError> {
    let size = std::mem::size_of::<S>();
    let n = range.len();
    if !cfg!(all(unix, target_endian = "little")) || n * size < min_bytes {
        return Ok(None);
    }
    let dtype = ds.dtype().map_err(|e| src.hdf5(path, e))?;
    // HDF5 addresses count from the end of a user block; files with one stay with libhdf5
    let no_userblock = ds.file().map(|f| f.userblock() == 0).unwrap_or(false);
    let plain = dtype.size() == size
        && matches!(dtype.byte_order(), hdf5::datatype::ByteOrder::LittleEndian)
        && ds.filters().is_empty()
        && ds.shape().len() == 1
        && no_userblock;
    if !plain {
        return Ok(None);
    }
    let runs = match ds.layout() {
        hdf5::dataset::Layout::Contiguous => match ds.offset() {
            Some(offset) if ds.storage_size() >= (ds.size() * size) as u64 => vec![Run {
                file: offset + (range.start * size) as u64,
                out: 0,
                len: n * size,
            }],
            _ => return Ok(None),
        },
        hdf5::dataset::Layout::Chunked => match chunk_runs(ds, range.clone(), size) {
            Some(runs) => runs,
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    read_runs(src, path, &runs, n, reuse).map(Some)
}

/// `len` bytes at file offset `file` go to byte `out` of the output.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    file: u64,
    out: usize,
    len: usize,
}

/// The runs of a 1-D chunked dataset's elements `range` (chunks adjacent in the file merged), or
/// `None` when a chunk is unallocated (it reads as the fill value), filtered or of an unexpected size.
fn chunk_runs(ds: &Dataset, range: Range<usize>, size: usize) -> Option<Vec<Run>> {
    use hdf5_sys::h5::{haddr_t, hsize_t, HADDR_UNDEF};
    let chunk = ds.chunk()?.first().copied().filter(|&c| c > 0)?;
    let mut runs: Vec<Run> = Vec::new();
    for k in range.start / chunk..range.end.div_ceil(chunk) {
        let coord: [hsize_t; 1] = [(k * chunk) as hsize_t];
        let (mut mask, mut addr, mut bytes): (u32, haddr_t, hsize_t) = (0, HADDR_UNDEF, 0);
        // SAFETY: a valid dataset id and pointers to locals of the types libhdf5 writes; one call
        // at a time under the hdf5 crate's lock.
        let status = hdf5::sync::sync(|| unsafe {
            hdf5_sys::h5d::H5Dget_chunk_info_by_coord(ds.id(), coord.as_ptr(), &mut mask, &mut addr, &mut bytes)
        });
        if status < 0 || addr == HADDR_UNDEF || mask != 0 || bytes as usize != chunk * size {
            return None;
        }
        let (lo, hi) = ((k * chunk).max(range.start), ((k + 1) * chunk).min(range.end));
        let run = Run {
            file: addr + ((lo - k * chunk) * size) as u64,
            out: (lo - range.start) * size,
            len: (hi - lo) * size,
        };
        match runs.last_mut() {
            Some(last) if last.file + last.len as u64 == run.file && last.out + last.len == run.out => {
                last.len += run.len
            }
            _ => runs.push(run),
        }
    }
    Some(runs)
}

#[cfg(unix)]
fn read_runs<S: Plain>(src: Src, path: &str, runs: &[Run], n: usize, reuse: Vec<S>) -> Result<Vec<S>, H5adError> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(src.file).map_err(|e| H5adError::Io {
        file: src.file.to_path_buf(),
        source: e,
    })?;
    let mut out = if reuse.capacity() == 0 {
        // zeroed by calloc, which hands out fresh pages untouched: the reads below fault them in
        vec![S::ZERO; n]
    } else {
        // the elements already there are overwritten without being zeroed first
        let mut v = reuse;
        if v.len() >= n {
            v.truncate(n);
        } else {
            v.resize(n, S::ZERO);
        }
        v
    };
    let bytes = n * std::mem::size_of::<S>();
    // SAFETY: the vector's `bytes` bytes are initialised, and any bits written into them make a valid
    // `S` (plain data).
    let raw = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut u8, bytes) };
    // the runs cut into parts of at most PART bytes, each with its own slice of the output
    let mut parts: Vec<(u64, &mut [u8])> = Vec::new();
    let mut rest = raw;
    let mut at = 0;
    for run in runs {
        debug_assert_eq!(run.out, at);
        let mut done = 0;
        while done < run.len {
            let len = (run.len - done).min(PART);
            let (part, tail) = std::mem::take(&mut rest).split_at_mut(len);
            parts.push((run.file + done as u64, part));
            rest = tail;
            done += len;
        }
        at += run.len;
    }
    if at != bytes {
        return Err(src.invalid(path, format!("the array's chunks cover {at} of its {bytes} bytes")));
    }
    parts.into_par_iter().try_for_each(|(offset, buf)| {
        file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                src.invalid(
                    path,
                    format!(
                        "the file ends inside this array (bytes {}..{} of the file are missing; truncated file?)",
                        offset,
                        offset + buf.len() as u64
                    ),
                )
            } else {
                H5adError::Io {
                    file: src.file.to_path_buf(),
                    source: e,
                }
            }
        })
    })?;
    Ok(out)
}

#[cfg(not(unix))]
fn read_runs<S: Plain>(_src: Src, _path: &str, _runs: &[Run], _n: usize, _reuse: Vec<S>) -> Result<Vec<S>, H5adError> {
    unreachable!("read_plain returns None off unix")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `data` as a contiguous dataset and as one chunked by 1,000 (the file closes when dropped).
    fn write_both(f: &hdf5::File, data: &[i32]) {
        f.new_dataset_builder().with_data(data).create("contiguous").unwrap();
        f.new_dataset_builder()
            .chunk(1000)
            .with_data(data)
            .create("chunked")
            .unwrap();
    }

    fn values(n: usize) -> Vec<i32> {
        (0..n as i32).map(|i| i.wrapping_mul(7919) ^ 0x55).collect()
    }

    /// Every range shape against a chunked layout: whole, inside one chunk, across chunk edges, the
    /// last element, empty; each equal to libhdf5's own read.
    #[test]
    fn chunked_and_contiguous_reads_match_libhdf5() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.h5");
        let n = 10_007;
        let data = values(n);
        write_both(&hdf5::File::create(&path).unwrap(), &data);
        let f = hdf5::File::open(&path).unwrap();
        let src = Src { file: &path };
        for name in ["contiguous", "chunked"] {
            let ds = f.dataset(name).unwrap();
            for range in [0..n, 5..17, 999..4001, 1000..2000, n - 1..n, 3000..3000] {
                let got = read_plain_above::<i32>(src, &ds, name, range.clone(), 0, Vec::new()).unwrap();
                let got = got.unwrap_or_else(|| panic!("{name} {range:?}: not read directly"));
                assert_eq!(got, &data[range.clone()], "{name} {range:?}");
                let lib: Vec<i32> = ds.read_slice_1d(range.clone()).unwrap().to_vec();
                assert_eq!(got, lib, "{name} {range:?}");
            }
        }
        // into a reused vector, shorter or longer than the read, with stale contents
        let ds = f.dataset("chunked").unwrap();
        for stale in [vec![-1i32; 10], vec![-1i32; 20_000]] {
            let got = read_plain_above::<i32>(src, &ds, "chunked", 999..4001, 0, stale)
                .unwrap()
                .unwrap();
            assert_eq!(got, &data[999..4001]);
        }
        // below the size threshold, libhdf5 reads it
        let ds = f.dataset("chunked").unwrap();
        assert!(read_plain::<i32>(src, &ds, "chunked", 0..n).unwrap().is_none());
    }

    /// Compressed chunks, chunks never written (they read as the fill value) and a wrong element size
    /// are left to libhdf5.
    #[test]
    fn filtered_unallocated_or_mistyped_data_is_left_to_libhdf5() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.h5");
        let data = values(5000);
        {
            let f = hdf5::File::create(&path).unwrap();
            f.new_dataset_builder()
                .chunk(1000)
                .deflate(4)
                .with_data(&data)
                .create("deflate")
                .unwrap();
            let sparse = f
                .new_dataset::<i32>()
                .chunk(1000)
                .shape(5000)
                .create("unwritten")
                .unwrap();
            sparse.write_slice(&data[..1000], 0..1000).unwrap();
        }
        let f = hdf5::File::open(&path).unwrap();
        let src = Src { file: &path };
        for name in ["deflate", "unwritten"] {
            let ds = f.dataset(name).unwrap();
            assert!(
                read_plain_above::<i32>(src, &ds, name, 0..5000, 0, Vec::new())
                    .unwrap()
                    .is_none(),
                "{name}"
            );
        }
        let ds = f.dataset("deflate").unwrap();
        assert!(read_plain_above::<i64>(src, &ds, "deflate", 0..5000, 0, Vec::new())
            .unwrap()
            .is_none());
        // the unwritten chunks of the partly written one are still readable where written
        let ds = f.dataset("unwritten").unwrap();
        assert_eq!(
            read_plain_above::<i32>(src, &ds, "unwritten", 10..990, 0, Vec::new())
                .unwrap()
                .unwrap(),
            &data[10..990]
        );
    }

    /// A file with a user block (addresses count from its end) is read by libhdf5, not from offsets
    /// that would be off by the block's size.
    #[test]
    fn file_with_a_user_block_is_left_to_libhdf5() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ub.h5");
        let data = values(5000);
        write_both(
            &hdf5::File::with_options()
                .with_fcpl(|p| p.userblock(512))
                .create(&path)
                .unwrap(),
            &data,
        );
        let f = hdf5::File::open(&path).unwrap();
        assert_eq!(f.userblock(), 512);
        for name in ["contiguous", "chunked"] {
            let ds = f.dataset(name).unwrap();
            let got = read_plain_above::<i32>(Src { file: &path }, &ds, name, 0..5000, 0, Vec::new()).unwrap();
            assert!(got.is_none(), "{name}");
        }
    }

    /// The file shrinks under an open dataset: the error names the array and says the file ends in it.
    #[test]
    fn truncated_file_is_a_named_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.h5");
        let data = values(100_000);
        {
            let f = hdf5::File::create(&path).unwrap();
            f.new_dataset_builder().with_data(&data).create("x").unwrap();
        }
        let f = hdf5::File::open(&path).unwrap();
        let ds = f.dataset("x").unwrap();
        let end = ds.offset().unwrap() + 200_000;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(end)
            .unwrap();
        let err = read_plain_above::<i32>(Src { file: &path }, &ds, "X/data", 0..100_000, 0, Vec::new()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("X/data") && msg.contains("truncated"), "{msg}");
    }
}
