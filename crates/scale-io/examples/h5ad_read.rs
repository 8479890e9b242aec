//! Times a whole-file read (X, obs, var): `cargo run --release -p scale-io --example h5ad_read -- FILE [REPEAT]`.
//! The same measurement as `scale bench h5ad-read`, without building the whole CLI.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let file = std::path::PathBuf::from(args.next().ok_or("usage: h5ad_read FILE [REPEAT]")?);
    let repeat: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3);
    let bytes = std::fs::metadata(&file)?.len() as f64;
    let mut best = f64::INFINITY;
    let mut cells = 0;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let r = scale_io::H5adReader::open(&file)?;
        let t0 = t.elapsed().as_secs_f64();
        let x = r.read_x()?;
        let t1 = t.elapsed().as_secs_f64();
        let obs = r.read_obs()?;
        let t2 = t.elapsed().as_secs_f64();
        let var = r.read_var()?;
        if std::env::var("SCALE_BENCH_DETAIL").is_ok() {
            eprintln!(
                "open {t0:.3} X {:.3} obs {:.3} var {:.3}",
                t1 - t0,
                t2 - t1,
                t.elapsed().as_secs_f64() - t2
            );
        }
        best = best.min(t.elapsed().as_secs_f64());
        cells = x.n_rows();
        assert_eq!((obs.len(), var.len()), (cells, x.n_cols()));
    }
    println!(
        "{}: best of {repeat}: {best:.3} s, {:.0} cells/s, {:.1} MB/s",
        file.display(),
        cells as f64 / best,
        bytes / 1e6 / best
    );
    Ok(())
}
