//! A tiny `.npy` reader for the fixtures (little-endian, C order, 1-d or 2-d; f4, f8, i4, i8, b1).

use std::path::Path;

pub enum Npy {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
}

pub fn read(path: &Path) -> (Npy, Vec<usize>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}: not .npy", path.display());
    let (hlen, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(&bytes[start..start + hlen]).unwrap();
    assert!(header.contains("'fortran_order': False"), "{header}");
    let descr = header.split("'descr': '").nth(1).unwrap().split('\'').next().unwrap();
    let shape_s = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> = shape_s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let body = &bytes[start + hlen..];
    let arr = match descr {
        "<f4" => Npy::F32(
            body.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        "<f8" => Npy::F64(
            body.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        "<i4" => Npy::I32(
            body.chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        "<i8" => Npy::I64(
            body.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        "|b1" => Npy::Bool(body.iter().map(|&b| b != 0).collect()),
        d => panic!("{}: unsupported dtype {d}", path.display()),
    };
    (arr, shape)
}

pub fn f32s(path: &Path) -> Vec<f32> {
    match read(path).0 {
        Npy::F32(v) => v,
        _ => panic!("{}: expected float32", path.display()),
    }
}

pub fn f64s(path: &Path) -> Vec<f64> {
    match read(path).0 {
        Npy::F64(v) => v,
        Npy::F32(v) => v.into_iter().map(|x| x as f64).collect(),
        _ => panic!("{}: expected float", path.display()),
    }
}

pub fn i64s(path: &Path) -> Vec<i64> {
    match read(path).0 {
        Npy::I64(v) => v,
        Npy::I32(v) => v.into_iter().map(|x| x as i64).collect(),
        _ => panic!("{}: expected integers", path.display()),
    }
}

pub fn bools(path: &Path) -> Vec<bool> {
    match read(path).0 {
        Npy::Bool(v) => v,
        _ => panic!("{}: expected bool", path.display()),
    }
}
