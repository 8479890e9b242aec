//! Times one stage of `scale eval` on one file alone, after reading it: `ed`, the energy distances
//! (cell-eval `pearson_edistance`), or `de`, the differential expression (pdex's part, without writing
//! the CSV, as `pdex()` returns a table):
//! `csv` times writing the DE table (one thread, as `scale eval` does).
//! `cargo run --release -p scale-eval --example stage_bench -- ed|de|csv FILE.h5ad [REPEAT] [THREADS] [PERT_COL] [CONTROL]`.
//! `SCALE_SIMD=avx2` keeps the AVX2 kernels (for A/B timing). Prints each run's seconds and a hash of the
//! results' bits (the same hash = the same numbers).

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let stage = args.next().expect("ed|de");
    let file = args.next().expect("FILE.h5ad");
    let repeat: usize = args.next().map_or(3, |a| a.parse().expect("REPEAT"));
    let threads: usize = args.next().map_or(2, |a| a.parse().expect("THREADS"));
    let pert_col = args.next().unwrap_or_else(|| "target_gene".into());
    let control = args.next().unwrap_or_else(|| "non-targeting".into());
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().ok();
    let t = Instant::now();
    let side = scale_eval::load::read_side(file.as_ref(), "bench", &pert_col, None).expect("read");
    println!("read: {:.3} s", t.elapsed().as_secs_f64());
    let labels: Vec<&str> = side.labels.iter().map(String::as_str).collect();
    let groups = scale_eval::Groups::new(&labels, &control).expect("groups");
    for i in 0..repeat {
        let t = Instant::now();
        let e: Vec<f64> = match stage.as_str() {
            "ed" => scale_eval::edistance::energy_distances(&side.x, &groups, &scale_eval::NoProgress),
            "de" => {
                let de =
                    scale_eval::de::differential_expression(&side.x, &side.genes, &groups, &scale_eval::NoProgress);
                de.blocks
                    .iter()
                    .flat_map(|b| b.p_value.iter().chain(&b.fdr).chain(&b.log2_fold_change).copied())
                    .collect()
            }
            "csv" => {
                // DE (untimed), then its CSV written with one thread, as `scale eval` writes it
                let de =
                    scale_eval::de::differential_expression(&side.x, &side.genes, &groups, &scale_eval::NoProgress);
                let out = std::env::temp_dir().join("stage_bench_de.csv");
                let t = Instant::now();
                scale_eval::with_threads(Some(1), || de.write_csv(&out)).expect("write");
                println!("csv: {:.3} s", t.elapsed().as_secs_f64());
                Vec::new()
            }
            other => panic!("unknown stage {other}: ed, de or csv"),
        };
        let s = t.elapsed().as_secs_f64();
        let hash = e.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
            (h ^ v.to_bits()).wrapping_mul(0x100_0000_01b3)
        });
        println!("run {i}: {s:.3} s, hash {hash:016x}");
    }
}
