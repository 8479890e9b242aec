//! Fuzzes the h5ad reader with mutated files: it must return errors, never panic.
//! Run: `cargo +nightly fuzz run h5ad_reader fuzz/seeds` (seeds: any small .h5ad, e.g. written by the tests).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // HDF5 reads from a path, so each input goes through a per-process temp file.
    let path = std::env::temp_dir().join(format!("scale-fuzz-{}.h5ad", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(r) = scale_io::H5adReader::open(&path) {
        let _ = r.read_obs();
        let _ = r.read_var();
        let _ = r.read_x();
        let _ = r.read_x_rows(0..r.n_obs().min(3));
        for k in r.obsm_keys().unwrap_or_default() {
            let _ = r.read_obsm(&k);
        }
    }
    let _ = std::fs::remove_file(&path);
});
