//! Parity with cell-eval 0.8.2 + pdex 0.3.0 on the committed fixtures (made by
//! `scripts/make_eval_fixtures.py`): every DE row and every per-perturbation metric value.
//!
//! Tolerances (why):
//! - p-value, FDR: relative 1e-9 here (on Linux the DE CSVs are in fact byte-identical, see
//!   `de_csv_is_byte_identical_to_pdex`; elsewhere the `libm` erfc port may differ by an ulp).
//! - U statistic: exact (sums of half-integers are exact in float64).
//! - target/ref means: relative 1e-6. pdex keeps them float32 (ulp 6e-8); we replicate scipy's
//!   float32 summation order, leaving expm1 rounding (<= 1 ulp) and, for the `counts` case,
//!   scanpy's float32 normalisation arithmetic.
//! - log2 fold change / percent change: 1e-6 (derived from the float32 means).
//! - metrics: relative 1e-5 (absolute 1e-7 near 0). cell-eval computes pseudobulk means, deltas,
//!   mse/mae and pearson_delta in float32 (e.g. `pearson_delta` comes back as a float32), we in
//!   float64 from the same float32 means: that leaves ~1e-7..1e-6 relative differences.
//! - `clustering_agreement`: the Leiden partitions behind it must be *identical* to cell-eval's
//!   (`clustering_matches_cell_eval_partitions`, against each case's `clustering.json`): our
//!   centroids are bit-identical (float64 means), the kNN distances agree to ~1e-13 before their
//!   float32 cast, umap's float32 connectivities and igraph's Leiden with numpy's seeded stream are
//!   replicated operation for operation. What is left is the AMI arithmetic (libm `lgamma` vs
//!   scipy's `gammaln`, numpy's SIMD `log`, summation order): 1e-12 absolute.

use std::path::{Path, PathBuf};

use scale_eval::fmt::{parse_csv, parse_float};
use scale_eval::load::read_side;
use scale_eval::{evaluate_summaries, summarize, DeTable, EvalConfig, NoProgress, Profile};

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(case)
}

fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= abs + rel * a.abs().max(b.abs())
}

struct Case {
    real: scale_eval::FileSummary,
    pred: scale_eval::FileSummary,
    genes: Vec<String>,
    cfg: EvalConfig,
}

fn load(case: &str) -> Case {
    let dir = fixture(case);
    let meta = std::fs::read_to_string(dir.join("meta.json")).unwrap();
    let pert_col = if meta.contains("\"perturbation\"") {
        "perturbation"
    } else {
        "target_gene"
    };
    let real = read_side(&dir.join("real.h5ad"), "real", pert_col, None).unwrap();
    let pred = read_side(&dir.join("pred.h5ad"), "pred", pert_col, None).unwrap();
    assert_eq!(real.genes, pred.genes);
    let cfg = EvalConfig {
        control: "non-targeting".into(),
        profile: Profile::Full,
        skip_metrics: vec![],
    };
    let rs = summarize(&real.view(), &cfg, false, &NoProgress).unwrap();
    let ps = summarize(&pred.view(), &cfg, false, &NoProgress).unwrap();
    Case {
        real: rs,
        pred: ps,
        genes: real.genes.clone(),
        cfg,
    }
}

fn compare_de(ours: &DeTable, path: &Path) {
    let theirs = DeTable::read_csv(path, &ours.features).unwrap();
    assert_eq!(ours.blocks.len(), theirs.blocks.len(), "{}", path.display());
    let mut n = 0;
    for (a, b) in ours.blocks.iter().zip(&theirs.blocks) {
        assert_eq!(a.target, b.target);
        assert_eq!(a.feature, b.feature, "feature order of {}", a.target);
        for i in 0..a.len() {
            let what = format!(
                "{} {} {}",
                path.display(),
                a.target,
                ours.features[a.feature[i] as usize]
            );
            assert!(
                close(a.p_value[i], b.p_value[i], 1e-9, 1e-300),
                "p {what}: {} vs {}",
                a.p_value[i],
                b.p_value[i]
            );
            assert!(
                close(a.fdr[i], b.fdr[i], 1e-9, 1e-300),
                "fdr {what}: {} vs {}",
                a.fdr[i],
                b.fdr[i]
            );
            assert_eq!(a.statistic[i], b.statistic[i], "U {what}");
            assert!(
                close(a.target_mean[i] as f64, b.target_mean[i] as f64, 1e-6, 1e-12),
                "target_mean {what}: {} vs {}",
                a.target_mean[i],
                b.target_mean[i]
            );
            assert!(
                close(a.ref_mean[i] as f64, b.ref_mean[i] as f64, 1e-6, 1e-12),
                "ref_mean {what}"
            );
            assert!(
                close(a.log2_fold_change[i], b.log2_fold_change[i], 1e-6, 1e-6),
                "lfc {what}: {} vs {}",
                a.log2_fold_change[i],
                b.log2_fold_change[i]
            );
            assert!(close(a.percent_change[i], b.percent_change[i], 1e-6, 1e-6), "pc {what}");
            assert_eq!(a.target_membership[i], b.target_membership[i]);
            assert_eq!(a.ref_membership[i], b.ref_membership[i]);
            n += 1;
        }
    }
    assert!(n > 0);
}

fn compare_results(ours: &scale_eval::ResultsTable, path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let rows = parse_csv(&text);
    let header = &rows[0];
    let ours_names: Vec<&str> = ours.columns.iter().map(|(n, _)| n.as_str()).collect();
    let theirs_names: Vec<&str> = header[1..].iter().map(|s| s.as_str()).collect();
    assert_eq!(ours_names, theirs_names, "column order of {}", path.display());
    let mut n = 0;
    for (r, row) in rows[1..].iter().enumerate() {
        assert_eq!(row[0], ours.perts[r], "row order");
        for (c, name) in header.iter().enumerate().skip(1) {
            let theirs = parse_float(&row[c]);
            let mine = ours.column(name).unwrap()[r];
            let what = format!(
                "{} {} {name}: ours {mine:?} vs cell-eval {theirs:?}",
                path.display(),
                row[0]
            );
            match (mine, theirs) {
                (None, None) => {}
                (Some(a), Some(b)) => assert!(close(a, b, 1e-5, 1e-7), "{what}"),
                _ => panic!("null mismatch: {what}"),
            }
            n += 1;
        }
    }
    n
}

fn compare_agg(ours: &scale_eval::AggTable, path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let rows = parse_csv(&text);
    let header = &rows[0];
    for row in &rows[1..] {
        for (c, name) in header.iter().enumerate().skip(1) {
            let theirs = parse_float(&row[c]);
            let mine = ours.get(name, &row[0]);
            let what = format!(
                "{} {} {name}: ours {mine:?} vs cell-eval {theirs:?}",
                path.display(),
                row[0]
            );
            match (mine, theirs) {
                (None, None) => {}
                (Some(a), Some(b)) => assert!(close(a, b, 1e-5, 1e-7), "{what}"),
                _ => panic!("null mismatch: {what}"),
            }
        }
    }
}

fn check_case(case: &str) {
    let c = load(case);
    let dir = fixture(case);
    compare_de(c.real.de.as_ref().unwrap(), &dir.join("real_de.csv"));
    compare_de(c.pred.de.as_ref().unwrap(), &dir.join("pred_de.csv"));
    let out = evaluate_summaries(&c.real, &c.pred, &c.genes, &c.cfg, None, None).unwrap();
    let n = compare_results(&out.results, &dir.join("results.csv"));
    assert!(n >= 25 * out.results.perts.len());
    compare_agg(&out.agg, &dir.join("agg_results.csv"));

    // The same metrics from cell-eval's own DE tables (--de-real / --de-pred).
    let dr = DeTable::read_csv(&dir.join("real_de.csv"), &c.genes).unwrap();
    let dp = DeTable::read_csv(&dir.join("pred_de.csv"), &c.genes).unwrap();
    let out2 = evaluate_summaries(&c.real, &c.pred, &c.genes, &c.cfg, Some(&dr), Some(&dp)).unwrap();
    compare_results(&out2.results, &dir.join("results.csv"));
}

#[test]
fn papalexi_matches_cell_eval() {
    check_case("papalexi");
}

#[test]
fn synthetic_edge_cases_match_cell_eval() {
    check_case("synthetic");
}

#[test]
fn raw_counts_are_normalised_like_cell_eval() {
    check_case("counts");
}

/// Many perturbations in expression programmes: a non-trivial `clustering_agreement`.
#[test]
fn clusters_match_cell_eval() {
    check_case("clusters");
}

/// The partitions behind `clustering_agreement`, resolution by resolution, against cell-eval's
/// own (`clustering.json`, written by the fixture script through cell-eval's helpers).
#[test]
fn clustering_matches_cell_eval_partitions() {
    use scale_eval::clustering::{adjusted_mutual_info, leiden, Connectivities};
    for case in ["papalexi", "synthetic", "counts", "clusters"] {
        let c = load(case);
        let text = std::fs::read_to_string(fixture(case).join("clustering.json")).unwrap();
        let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
        let perts: Vec<String> = c.real.groups.perts().map(|(_, n)| n.to_string()).collect();
        let theirs_perts: Vec<String> = reference["perturbations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(perts, theirs_perts, "{case}");
        let g = c.genes.len();
        let labels = |v: &serde_json::Value| -> Vec<usize> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect()
        };
        let mut partitions = Vec::new();
        for (which, s) in [("real", &c.real), ("pred", &c.pred)] {
            let cent = s.centroids.as_ref().unwrap();
            let rows: Vec<f64> = s
                .groups
                .perts()
                .flat_map(|(k, _)| cent[k * g..(k + 1) * g].iter().copied())
                .collect();
            let conn = Connectivities::from_centroids(&rows, perts.len());
            for (res, theirs) in reference[which].as_object().unwrap() {
                let ours = leiden(&conn, res.parse().unwrap(), 0);
                assert_eq!(
                    ours,
                    labels(theirs),
                    "{case} {which} Leiden partition at resolution {res}"
                );
                partitions.push((which, res.clone(), ours));
            }
        }
        let real = &partitions.iter().find(|p| p.0 == "real").unwrap().2;
        for (_, res, pred) in partitions.iter().filter(|p| p.0 == "pred") {
            let theirs = reference["ami"][res.as_str()].as_f64().unwrap();
            let ours = adjusted_mutual_info(real, pred);
            assert!(
                (ours - theirs).abs() <= 1e-12,
                "{case} AMI at {res}: ours {ours} vs {theirs}"
            );
        }
        let out = evaluate_summaries(&c.real, &c.pred, &c.genes, &c.cfg, None, None).unwrap();
        let ours = out.results.column("clustering_agreement").unwrap()[0].unwrap();
        let theirs = reference["score"].as_f64().unwrap();
        assert!(
            (ours - theirs).abs() <= 1e-12,
            "{case} clustering_agreement: ours {ours} vs {theirs}"
        );
    }
}

#[test]
fn de_csv_round_trips() {
    let c = load("synthetic");
    let de = c.real.de.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("real_de.csv");
    de.write_csv(&p).unwrap();
    let back = DeTable::read_csv(&p, &c.genes).unwrap();
    assert_eq!(back.blocks.len(), de.blocks.len());
    for (a, b) in de.blocks.iter().zip(&back.blocks) {
        assert_eq!(a.p_value, b.p_value);
        assert_eq!(a.fdr, b.fdr);
        assert_eq!(a.target_mean, b.target_mean);
        assert_eq!(a.log2_fold_change, b.log2_fold_change);
    }
}

/// Our DE CSVs are byte-identical to pdex's: same float32 summation order for the means, the C
/// library's expm1f/erfc, the same BH arithmetic and polars' float formatting.
#[test]
fn de_csv_is_byte_identical_to_pdex() {
    for case in ["papalexi", "synthetic", "counts", "clusters"] {
        let c = load(case);
        let dir = tempfile::tempdir().unwrap();
        for (which, s) in [("real", &c.real), ("pred", &c.pred)] {
            let p = dir.path().join(format!("{which}_de.csv"));
            s.de.as_ref().unwrap().write_csv(&p).unwrap();
            let ours = std::fs::read_to_string(&p).unwrap();
            let theirs = std::fs::read_to_string(fixture(case).join(format!("{which}_de.csv"))).unwrap();
            for (k, (a, b)) in ours.lines().zip(theirs.lines()).enumerate() {
                assert_eq!(a, b, "{case} {which}_de.csv line {}", k + 1);
            }
            assert_eq!(ours.lines().count(), theirs.lines().count());
        }
    }
}
