//! Interop with Python anndata, both directions: files written by anndata/scanpy are read by scale with
//! the same contents, and files written by scale are read by `anndata.read_h5ad` with the same contents.
//! Needs `python3` with anndata and scanpy (installed by `.ci/run`); set SCALE_SKIP_PYTHON=1 to skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use scale_io::{read_h5ad, write_h5ad, AnnData, Column, CsrMatrix, DenseMatrix, Frame, Matrix};
use serde_json::{json, Value};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/anndata_interop.py")
}

fn skip() -> bool {
    std::env::var("SCALE_SKIP_PYTHON").is_ok_and(|v| v == "1")
}

fn python(args: &[&str]) -> String {
    let out = Command::new("python3")
        // Other tests in this process may hold an HDF5 file open for writing when this child is forked;
        // the child inherits that flock, so h5py must not insist on taking one (see the locking test).
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .arg(script())
        .args(args)
        .output()
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "python {:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn column_json(c: &Column) -> Value {
    let take = |n: usize| n.min(100);
    match c {
        Column::Categorical { categories, .. } => json!({
            "kind": "categorical",
            "values": (0..take(c.len())).map(|i| c.get_str(i).unwrap_or_default()).collect::<Vec<_>>(),
            "categories": categories,
        }),
        Column::Bool(v) => json!({"kind": "bool", "values": v[..take(v.len())]}),
        Column::Int(v) => json!({"kind": "int", "values": v[..take(v.len())]}),
        Column::Float(v) => json!({"kind": "float", "values": v[..take(v.len())].iter()
            .map(|x| if x.is_nan() { Value::Null } else { json!(x) }).collect::<Vec<_>>()}),
        Column::String(v) => json!({"kind": "string", "values": v[..take(v.len())]}),
    }
}

fn dense_json(m: &DenseMatrix) -> Value {
    let rows: Vec<f64> = (0..m.n_rows.min(50))
        .map(|r| m.row(r).iter().map(|&v| v as f64).sum())
        .collect();
    json!({"shape": [m.n_rows, m.n_cols], "sum": m.data.iter().map(|&v| v as f64).sum::<f64>(), "row_sums": rows})
}

/// The same canonical summary `scripts/anndata_interop.py summary` prints.
fn summary(a: &AnnData) -> Value {
    let x = a.x.to_dense();
    let mut col_sums = vec![0f64; x.n_cols];
    for r in 0..x.n_rows {
        for (c, &v) in x.row(r).iter().enumerate() {
            col_sums[c] += v as f64;
        }
    }
    col_sums.truncate(50);
    let mut xj = dense_json(&x);
    xj["col_sums"] = json!(col_sums);
    xj["nnz"] = json!(x.data.iter().filter(|&&v| v != 0.0).count());
    let frame = |f: &Frame| -> Value { f.columns.iter().map(|(n, c)| (n.clone(), column_json(c))).collect() };
    json!({
        "shape": [a.n_obs(), a.n_vars()],
        "x": xj,
        "obs_index": a.obs.index[..a.obs.len().min(100)],
        "var_index": a.var.index,
        "obs": frame(&a.obs),
        "var": frame(&a.var),
        "obsm": a.obsm.iter().map(|(k, m)| (k.clone(), dense_json(m))).collect::<serde_json::Map<_, _>>(),
        "layers": a.layers.iter().map(|(k, m)| (k.clone(), dense_json(&m.to_dense()))).collect::<serde_json::Map<_, _>>(),
        "uns": a.uns.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
    })
}

/// Structural equality with a relative tolerance on numbers (float64 inputs are read as float32).
fn assert_same(a: &Value, b: &Value, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-5 * x.abs().max(y.abs()).max(1.0),
                "{at}: {x} != {y}"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: lengths differ");
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                assert_same(p, q, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut kx: Vec<_> = x.keys().collect();
            let mut ky: Vec<_> = y.keys().collect();
            kx.sort();
            ky.sort();
            assert_eq!(kx, ky, "{at}: keys differ");
            for k in kx {
                assert_same(&x[k], &y[k], &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

#[test]
fn scale_reads_what_anndata_and_scanpy_write() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    python(&["make", d]);
    for name in [
        "csr_float32",
        "csc_float64",
        "dense_int32",
        "codes_int32",
        "pbmc68k_reduced_dense",
        "pbmc68k_reduced_csr",
    ] {
        let path = dir.path().join(format!("{name}.h5ad"));
        let ours = summary(&read_h5ad(&path).unwrap_or_else(|e| panic!("{name}: {e}")));
        let theirs: Value = serde_json::from_str(&python(&["summary", path.to_str().unwrap()])).unwrap();
        assert_same(&ours, &theirs, name);
    }
}

fn scale_written() -> AnnData {
    let n = 7;
    let mut x = CsrMatrix::empty(4);
    for r in 0..n {
        let cols: Vec<u32> = (0..4).filter(|c| (r + c) % 3 != 0).map(|c| c as u32).collect();
        let vals: Vec<f32> = cols.iter().map(|&c| (r * 4) as f32 + c as f32 + 0.5).collect();
        x.push_row(&cols, &vals);
    }
    let mut obs = Frame::new((0..n).map(|i| format!("c{i}")).collect());
    let labels = [
        "non-targeting",
        "STAT1",
        "Ünïcødé-β",
        "干扰素",
        "STAT1",
        "non-targeting",
        "干扰素",
    ];
    obs.set_column("target_gene", Column::categorical_from_labels(&labels));
    obs.set_column("n", Column::Int((0..n as i64).collect()));
    obs.set_column("f", Column::Float(vec![0.5, f64::NAN, 1.0, 2.0, 3.0, 4.0, 5.0]));
    obs.set_column("b", Column::Bool(vec![true, false, true, false, true, false, true]));
    obs.set_column(
        "s",
        Column::String(labels.iter().map(|s| format!("text {s}")).collect()),
    );
    let mut var = Frame::new(vec!["A".into(), "B".into(), "GENE-ü".into(), "D".into()]);
    var.index_name = "gene_symbol".into();
    var.set_column("hv", Column::Bool(vec![true, false, false, true]));
    let mut a = AnnData::new(Matrix::Csr(x.clone()), obs, var);
    a.layers.push(("counts".into(), Matrix::Dense(x.to_dense())));
    a.obsm.push((
        "X_emb".into(),
        DenseMatrix {
            n_rows: n,
            n_cols: 2,
            data: (0..2 * n).map(|v| v as f32).collect(),
        },
    ));
    a.uns.push(("note".into(), "written by scale ✓".into()));
    a
}

#[test]
fn anndata_reads_what_scale_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scale.h5ad");
    let a = scale_written();
    write_h5ad(&path, &a).unwrap();
    // Scale's own round trip is exact (compared via Debug so that NaN equals NaN).
    assert_eq!(format!("{:?}", read_h5ad(&path).unwrap()), format!("{a:?}"));
    // No temp file left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    if skip() {
        return;
    }
    let theirs: Value = serde_json::from_str(&python(&["summary", path.to_str().unwrap()])).unwrap();
    assert_same(&summary(&a), &theirs, "scale.h5ad");
}

#[test]
fn anndata_reads_a_streamed_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.h5ad");
    let a = scale_written();
    let Matrix::Csr(x) = &a.x else { unreachable!() };
    let mut w = scale_io::H5adStreamWriter::create(&path, &a.var).unwrap();
    w.write_rows(&x.select_rows(&[0, 1, 2])).unwrap();
    w.write_rows(&x.select_rows(&[])).unwrap();
    w.write_rows(&x.select_rows(&[3, 4, 5, 6])).unwrap();
    w.finish(&a.obs, &a.uns).unwrap();
    let back = read_h5ad(&path).unwrap();
    assert_eq!(back.x, a.x);
    assert_eq!(format!("{:?}", back.obs), format!("{:?}", a.obs));
    if skip() {
        return;
    }
    let theirs: Value = serde_json::from_str(&python(&["summary", path.to_str().unwrap()])).unwrap();
    let mut expected = a.clone();
    expected.layers.clear();
    expected.obsm.clear();
    assert_same(&summary(&expected), &theirs, "stream.h5ad");
}
