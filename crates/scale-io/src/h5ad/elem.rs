//! Element-level access shared by the reader and writers: encoding attributes, typed 1-D reads with
//! dtype conversion, string arrays, and error context (file + path inside it).

use std::ops::Range;
use std::path::Path;

use hdf5::types::{FixedAscii, FixedUnicode, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Dataset, Group, Location};

use crate::H5adError;

/// Names the file in every error raised while reading or writing it.
#[derive(Clone, Copy)]
pub(crate) struct Src<'a> {
    pub file: &'a Path,
}

impl<'a> Src<'a> {
    pub fn hdf5(&self, path: &str, source: hdf5::Error) -> H5adError {
        H5adError::Hdf5 {
            file: self.file.to_path_buf(),
            path: path.to_string(),
            source,
        }
    }

    pub fn missing(&self, path: &str) -> H5adError {
        H5adError::Missing {
            file: self.file.to_path_buf(),
            path: path.to_string(),
        }
    }

    pub fn invalid(&self, path: &str, message: impl Into<String>) -> H5adError {
        H5adError::Invalid {
            file: self.file.to_path_buf(),
            path: path.to_string(),
            message: message.into(),
        }
    }

    pub fn group(&self, parent: &Group, name: &str, path: &str) -> Result<Group, H5adError> {
        if !parent.link_exists(name) {
            return Err(self.missing(path));
        }
        parent.group(name).map_err(|e| self.hdf5(path, e))
    }

    pub fn dataset(&self, parent: &Group, name: &str, path: &str) -> Result<Dataset, H5adError> {
        if !parent.link_exists(name) {
            return Err(self.missing(path));
        }
        parent.dataset(name).map_err(|e| self.hdf5(path, e))
    }

    /// A string attribute (variable- or fixed-length), `None` when absent.
    pub fn str_attr(&self, loc: &Location, name: &str, path: &str) -> Result<Option<String>, H5adError> {
        if !loc
            .attr_names()
            .map_err(|e| self.hdf5(path, e))?
            .iter()
            .any(|n| n == name)
        {
            return Ok(None);
        }
        let attr = loc.attr(name).map_err(|e| self.hdf5(path, e))?;
        let desc = attr
            .dtype()
            .and_then(|d| d.to_descriptor())
            .map_err(|e| self.hdf5(path, e))?;
        let ctx = format!("{path} (attribute {name})");
        let s = match desc {
            TypeDescriptor::VarLenUnicode => attr.read_scalar::<VarLenUnicode>().map(|s| s.as_str().to_string()),
            TypeDescriptor::VarLenAscii => attr.read_scalar::<VarLenAscii>().map(|s| s.as_str().to_string()),
            TypeDescriptor::FixedAscii(_) => attr.read_scalar::<FixedAscii<1024>>().map(|s| s.as_str().to_string()),
            TypeDescriptor::FixedUnicode(_) => attr.read_scalar::<FixedUnicode<1024>>().map(|s| s.as_str().to_string()),
            other => return Err(self.invalid(&ctx, format!("expected a string attribute, found {other}"))),
        };
        s.map(Some).map_err(|e| self.hdf5(&ctx, e))
    }

    /// A string-array attribute such as `column-order` (an empty one is stored as float64 of shape (0,)).
    pub fn str_array_attr(&self, loc: &Location, name: &str, path: &str) -> Result<Vec<String>, H5adError> {
        if !loc
            .attr_names()
            .map_err(|e| self.hdf5(path, e))?
            .iter()
            .any(|n| n == name)
        {
            return Ok(Vec::new());
        }
        let ctx = format!("{path} (attribute {name})");
        let attr = loc.attr(name).map_err(|e| self.hdf5(&ctx, e))?;
        if attr.size() == 0 {
            return Ok(Vec::new());
        }
        let desc = attr
            .dtype()
            .and_then(|d| d.to_descriptor())
            .map_err(|e| self.hdf5(&ctx, e))?;
        let v = match desc {
            TypeDescriptor::VarLenUnicode => attr
                .read_raw::<VarLenUnicode>()
                .map(|v| v.iter().map(|s| s.as_str().to_string()).collect()),
            TypeDescriptor::VarLenAscii => attr
                .read_raw::<VarLenAscii>()
                .map(|v| v.iter().map(|s| s.as_str().to_string()).collect()),
            TypeDescriptor::FixedAscii(_) => attr
                .read_raw::<FixedAscii<1024>>()
                .map(|v| v.iter().map(|s| s.as_str().to_string()).collect()),
            TypeDescriptor::FixedUnicode(_) => attr
                .read_raw::<FixedUnicode<1024>>()
                .map(|v| v.iter().map(|s| s.as_str().to_string()).collect()),
            other => return Err(self.invalid(&ctx, format!("expected an array of strings, found {other}"))),
        };
        v.map_err(|e| self.hdf5(&ctx, e))
    }

    /// The `encoding-type` of a group or dataset; `None` for pre-0.7 anndata files without it.
    pub fn encoding(&self, loc: &Location, path: &str) -> Result<Option<String>, H5adError> {
        self.str_attr(loc, "encoding-type", path)
    }

    /// An integer attribute array such as a sparse matrix's `shape`.
    pub fn int_array_attr(&self, loc: &Location, name: &str, path: &str) -> Result<Vec<i64>, H5adError> {
        let ctx = format!("{path} (attribute {name})");
        if !loc
            .attr_names()
            .map_err(|e| self.hdf5(path, e))?
            .iter()
            .any(|n| n == name)
        {
            return Err(self.missing(&ctx));
        }
        loc.attr(name)
            .and_then(|a| a.read_raw::<i64>())
            .map_err(|e| self.hdf5(&ctx, e))
    }

    pub fn bool_attr(&self, loc: &Location, name: &str, path: &str) -> Result<bool, H5adError> {
        if !loc
            .attr_names()
            .map_err(|e| self.hdf5(path, e))?
            .iter()
            .any(|n| n == name)
        {
            return Ok(false);
        }
        let ctx = format!("{path} (attribute {name})");
        let attr = loc.attr(name).map_err(|e| self.hdf5(&ctx, e))?;
        match attr.read_scalar::<bool>() {
            Ok(b) => Ok(b),
            Err(_) => attr
                .read_scalar::<i64>()
                .map(|v| v != 0)
                .map_err(|e| self.hdf5(&ctx, e)),
        }
    }
}

/// The dtype of a dataset as numpy would name it.
pub(crate) fn dtype_name(ds: &Dataset) -> String {
    ds.dtype()
        .and_then(|d| d.to_descriptor())
        .map(|d| d.to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether a numeric dataset holds a type we can convert to numbers.
pub(crate) fn numeric_kind(src: Src, ds: &Dataset, path: &str) -> Result<TypeDescriptor, H5adError> {
    let desc = ds
        .dtype()
        .and_then(|d| d.to_descriptor())
        .map_err(|e| src.hdf5(path, e))?;
    match desc {
        TypeDescriptor::Integer(_)
        | TypeDescriptor::Unsigned(_)
        | TypeDescriptor::Float(_)
        | TypeDescriptor::Boolean
        | TypeDescriptor::Enum(_) => Ok(desc),
        other => Err(src.invalid(path, format!("expected a numeric array, found dtype {other}"))),
    }
}

/// Numeric element types the reader converts to (with Rust `as` semantics from any stored type).
pub(crate) trait Num: hdf5::H5Type + Copy + 'static {
    fn from_bool(b: bool) -> Self;
    fn from_f64_lossy_native<S: Native>(v: S) -> Self;
}

/// Stored numeric types, convertible with `as`.
pub(crate) trait Native: Copy {
    fn to_f64(self) -> f64;
    fn to_i64(self) -> i64;
    const IS_FLOAT: bool;
}

macro_rules! impl_native {
    ($($t:ty => $f:expr),*) => { $(impl Native for $t {
        fn to_f64(self) -> f64 { self as f64 }
        fn to_i64(self) -> i64 { self as i64 }
        const IS_FLOAT: bool = $f;
    })* };
}
impl_native!(f32 => true, f64 => true, i8 => false, i16 => false, i32 => false, i64 => false,
    u8 => false, u16 => false, u32 => false, u64 => false);

macro_rules! impl_num {
    ($($t:ty),*) => { $(impl Num for $t {
        fn from_bool(b: bool) -> Self { b as u8 as $t }
        #[inline]
        fn from_f64_lossy_native<S: Native>(v: S) -> Self {
            // Integers go through i64 so that large int64 values survive into i64/u64 targets exactly.
            if S::IS_FLOAT { v.to_f64() as $t } else { v.to_i64() as $t }
        }
    })* };
}
impl_num!(f32, f64, i32, i64, u32, u64);

/// Reads a 1-D numeric dataset (or a range of it) converting to `T` (HDF5 does int → float conversion).
pub(crate) fn read_numeric<T: Num>(
    src: Src,
    ds: &Dataset,
    path: &str,
    range: Option<Range<usize>>,
) -> Result<Vec<T>, H5adError> {
    let desc = numeric_kind(src, ds, path)?;
    let n = ds.size();
    if let Some(r) = &range {
        if r.end > n || r.start > r.end {
            return Err(src.invalid(
                path,
                format!("requested elements {}..{} of an array of {n}", r.start, r.end),
            ));
        }
    }
    if matches!(desc, TypeDescriptor::Boolean | TypeDescriptor::Enum(_)) {
        // h5py bools are an int8 enum; HDF5 will not convert enum -> number, so go through bool.
        let b = read_bool(src, ds, path)?;
        let b = match range {
            Some(r) => &b[r],
            None => &b[..],
        };
        return Ok(b.iter().map(|&x| T::from_bool(x)).collect());
    }
    // Read in the stored type and convert in Rust: HDF5's own type conversion is several times slower.
    macro_rules! native {
        ($t:ty) => {{
            let all = range.clone().unwrap_or(0..n);
            let v: Vec<$t> = match super::plain::read_plain::<$t>(src, ds, path, all)? {
                Some(v) => v,
                None => match &range {
                    None => ds.read_raw::<$t>(),
                    Some(r) if r.start == 0 && r.end == n => ds.read_raw::<$t>(),
                    Some(r) => ds.read_slice_1d::<$t, _>(r.clone()).map(|a| a.to_vec()),
                }
                .map_err(|e| src.hdf5(path, e))?,
            };
            // stored as asked: the vector as it is (a conversion pass over 200 MB costs ~40 ms)
            let mut v = Some(v);
            if let Some(same) = (&mut v as &mut dyn std::any::Any)
                .downcast_mut::<Option<Vec<T>>>()
                .and_then(Option::take)
            {
                return Ok(same);
            }
            Ok(v.into_iter().flatten().map(T::from_f64_lossy_native).collect())
        }};
    }
    use hdf5::types::{FloatSize, IntSize};
    match desc {
        TypeDescriptor::Float(FloatSize::U4) => native!(f32),
        TypeDescriptor::Float(FloatSize::U8) => native!(f64),
        TypeDescriptor::Integer(IntSize::U1) => native!(i8),
        TypeDescriptor::Integer(IntSize::U2) => native!(i16),
        TypeDescriptor::Integer(IntSize::U4) => native!(i32),
        TypeDescriptor::Integer(IntSize::U8) => native!(i64),
        TypeDescriptor::Unsigned(IntSize::U1) => native!(u8),
        TypeDescriptor::Unsigned(IntSize::U2) => native!(u16),
        TypeDescriptor::Unsigned(IntSize::U4) => native!(u32),
        TypeDescriptor::Unsigned(IntSize::U8) => native!(u64),
        _ => {
            let res = match range {
                None => ds.read_raw::<T>(),
                Some(r) => ds.read_slice_1d::<T, _>(r).map(|a| a.to_vec()),
            };
            res.map_err(|e| src.hdf5(path, e))
        }
    }
}

pub(crate) fn read_bool(src: Src, ds: &Dataset, path: &str) -> Result<Vec<bool>, H5adError> {
    match ds.read_raw::<bool>() {
        Ok(v) => Ok(v),
        Err(_) => ds
            .read_raw::<i64>()
            .map(|v| v.iter().map(|&x| x != 0).collect())
            .map_err(|e| src.hdf5(path, e)),
    }
}

/// Reads a 1-D string dataset (variable- or fixed-length, UTF-8 or ASCII).
pub(crate) fn read_strings(src: Src, ds: &Dataset, path: &str) -> Result<Vec<String>, H5adError> {
    let desc = ds
        .dtype()
        .and_then(|d| d.to_descriptor())
        .map_err(|e| src.hdf5(path, e))?;
    let res = match desc {
        TypeDescriptor::VarLenUnicode => ds
            .read_raw::<VarLenUnicode>()
            .map(|v| v.iter().map(|s| s.as_str().to_string()).collect()),
        TypeDescriptor::VarLenAscii => ds
            .read_raw::<VarLenAscii>()
            .map(|v| v.iter().map(|s| s.as_str().to_string()).collect()),
        TypeDescriptor::FixedAscii(_) => ds
            .read_raw::<FixedAscii<1024>>()
            .map(|v| v.iter().map(|s| s.as_str().to_string()).collect()),
        TypeDescriptor::FixedUnicode(_) => ds
            .read_raw::<FixedUnicode<1024>>()
            .map(|v| v.iter().map(|s| s.as_str().to_string()).collect()),
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
            ds.read_raw::<i64>().map(|v| v.iter().map(|x| x.to_string()).collect())
        }
        TypeDescriptor::Float(_) => ds.read_raw::<f64>().map(|v| v.iter().map(|x| x.to_string()).collect()),
        other => return Err(src.invalid(path, format!("expected an array of strings, found dtype {other}"))),
    };
    res.map_err(|e| src.hdf5(path, e))
}

/// Reads a scalar string dataset (`encoding-type: string`).
pub(crate) fn read_scalar_string(src: Src, ds: &Dataset, path: &str) -> Result<String, H5adError> {
    let desc = ds
        .dtype()
        .and_then(|d| d.to_descriptor())
        .map_err(|e| src.hdf5(path, e))?;
    let res = match desc {
        TypeDescriptor::VarLenUnicode => ds.read_scalar::<VarLenUnicode>().map(|s| s.as_str().to_string()),
        TypeDescriptor::VarLenAscii => ds.read_scalar::<VarLenAscii>().map(|s| s.as_str().to_string()),
        other => return Err(src.invalid(path, format!("expected a string scalar, found dtype {other}"))),
    };
    res.map_err(|e| src.hdf5(path, e))
}
