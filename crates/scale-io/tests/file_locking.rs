//! Regression: `anndata_reads_a_streamed_file` failed in CI with "unable to lock file, errno = 11".
//! HDF5 takes an flock on every file it opens and its descriptors are not close-on-exec, so a child
//! process forked while a file was open for writing kept the lock after the writer closed and renamed
//! the file; the reader's own lock request then failed. Readers now open without a lock.

use std::process::Command;

use scale_io::{read_h5ad, CsrMatrix, Frame, H5adStreamWriter, Matrix};

#[test]
fn read_succeeds_while_a_child_forked_during_the_write_holds_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.h5ad");
    let var = Frame::new(vec!["A".into(), "B".into()]);
    let mut x = CsrMatrix::empty(2);
    x.push_row(&[0, 1], &[1.0, 2.0]);
    x.push_row(&[1], &[3.0]);
    let mut w = H5adStreamWriter::create(&path, &var).unwrap();
    w.write_rows(&x).unwrap();
    // Forked while the temp file is open for writing: the child inherits the descriptor and its lock.
    let mut child = Command::new("sleep").arg("5").spawn().expect("`sleep` must exist");
    w.finish(&Frame::new(vec!["c0".into(), "c1".into()]), &[]).unwrap();
    let back = read_h5ad(&path);
    let _ = child.kill();
    let _ = child.wait();
    let back = back.expect("a finished file must be readable while an unrelated child is alive");
    assert_eq!(back.x, Matrix::Csr(x));
}
