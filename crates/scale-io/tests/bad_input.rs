//! Every malformed input gets a named error (file + path inside it), never a panic or silent zeros.
//! Each test crafts its broken file itself.

use std::path::{Path, PathBuf};

use scale_io::{read_h5ad, write_h5ad, AnnData, Column, CsrMatrix, Frame, H5adError, H5adReader, Matrix};

fn valid(dir: &Path) -> PathBuf {
    let mut x = CsrMatrix::empty(3);
    x.push_row(&[0, 2], &[1.0, 2.0]);
    x.push_row(&[1], &[3.0]);
    let mut obs = Frame::new(vec!["a".into(), "b".into()]);
    obs.set_column(
        "target_gene",
        Column::categorical_from_labels(&["non-targeting", "STAT1"]),
    );
    let var = Frame::new(vec!["G1".into(), "G2".into(), "G3".into()]);
    let path = dir.join("valid.h5ad");
    write_h5ad(&path, &AnnData::new(Matrix::Csr(x), obs, var)).unwrap();
    path
}

fn edit(path: &Path, f: impl FnOnce(&hdf5::File)) {
    let file = hdf5::File::open_rw(path).unwrap();
    f(&file);
    file.close().unwrap();
}

fn expect_err(path: &Path) -> H5adError {
    let err = read_h5ad(path).expect_err("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "error must name the file: {msg}"
    );
    err
}

#[test]
fn nonexistent_file_is_an_io_error() {
    let err = expect_err(Path::new("/nonexistent/dir/none.h5ad"));
    assert!(matches!(err, H5adError::Io { .. }), "{err}");
}

#[test]
fn not_hdf5_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.h5ad");
    std::fs::write(&p, "cell,gene\n1,2\n").unwrap();
    assert!(matches!(expect_err(&p), H5adError::NotHdf5 { .. }));
}

#[test]
fn truncated_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid(dir.path());
    let bytes = std::fs::read(&p).unwrap();
    for keep in [bytes.len() / 2, bytes.len() - 100, 600] {
        let t = dir.path().join(format!("trunc{keep}.h5ad"));
        std::fs::write(&t, &bytes[..keep]).unwrap();
        expect_err(&t);
    }
}

#[test]
fn missing_x_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid(dir.path());
    edit(&p, |f| f.unlink("X").unwrap());
    let r = H5adReader::open(&p).unwrap();
    assert_eq!(r.n_obs(), 2);
    let err = r.read_x().unwrap_err();
    assert!(matches!(&err, H5adError::Missing { path, .. } if path == "X"), "{err}");
}

#[test]
fn unknown_encoding_type_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid(dir.path());
    edit(&p, |f| {
        let x = f.group("X").unwrap();
        x.delete_attr("encoding-type").unwrap();
        let v: hdf5::types::VarLenUnicode = "coo_matrix".parse().unwrap();
        x.new_attr::<hdf5::types::VarLenUnicode>()
            .create("encoding-type")
            .unwrap()
            .write_scalar(&v)
            .unwrap();
    });
    let err = expect_err(&p);
    assert!(
        matches!(&err, H5adError::UnknownEncoding { found, .. } if found == "coo_matrix"),
        "{err}"
    );
}

#[test]
fn obs_index_length_mismatch_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid(dir.path());
    edit(&p, |f| {
        let obs = f.group("obs").unwrap();
        obs.unlink("_index").unwrap();
        let names: Vec<hdf5::types::VarLenUnicode> = ["a", "b", "c"].iter().map(|s| s.parse().unwrap()).collect();
        obs.new_dataset_builder().with_data(&names).create("_index").unwrap();
    });
    let err = expect_err(&p);
    assert!(
        matches!(
            &err,
            H5adError::LengthMismatch {
                found: 3,
                expected: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn categorical_code_out_of_range_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid(dir.path());
    edit(&p, |f| {
        let g = f.group("obs/target_gene").unwrap();
        g.unlink("codes").unwrap();
        g.new_dataset_builder().with_data(&[0i8, 7]).create("codes").unwrap();
    });
    let err = expect_err(&p);
    assert!(
        matches!(
            &err,
            H5adError::CodeOutOfRange {
                row: 1,
                code: 7,
                n_categories: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn csr_index_out_of_range_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid(dir.path());
    edit(&p, |f| {
        let g = f.group("X").unwrap();
        g.unlink("indices").unwrap();
        g.new_dataset_builder()
            .with_data(&[0i32, 9, 1])
            .create("indices")
            .unwrap();
    });
    let err = expect_err(&p);
    assert!(err.to_string().contains("X/indices"), "{err}");
}

#[test]
fn csr_indptr_beyond_data_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid(dir.path());
    edit(&p, |f| {
        let g = f.group("X").unwrap();
        g.unlink("indptr").unwrap();
        g.new_dataset_builder()
            .with_data(&[0i64, 2, 30])
            .create("indptr")
            .unwrap();
    });
    let err = expect_err(&p);
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn negative_counts_in_x_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid(dir.path());
    edit(&p, |f| {
        let g = f.group("X").unwrap();
        g.unlink("data").unwrap();
        g.new_dataset_builder()
            .with_data(&[1.0f32, -2.0, 3.0])
            .create("data")
            .unwrap();
    });
    let a = read_h5ad(&p).unwrap();
    let err = scale_io::check_counts(&a.x, &p, "X", 0).unwrap_err().to_string();
    assert!(err.contains("cell 0, gene 2") && err.contains("negative"), "{err}");
}
