//! Reads the real data sets in `../shared/data` (skipped when that directory is absent, e.g. on a
//! fresh clone without the shared folder; the vendored Papalexi copy in `data/` is always read).

use std::path::{Path, PathBuf};

use scale_io::{detect_space, read_h5ad, Column, ExpressionSpace, H5adReader, Matrix, MatrixEncoding};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shared(rel: &str) -> Option<PathBuf> {
    let p = repo_root().join("../shared/data").join(rel);
    p.exists().then_some(p)
}

fn papalexi() -> PathBuf {
    shared("papalexi2021_eccite_lowmoi/papalexi2021_lowmoi.h5ad")
        .unwrap_or_else(|| repo_root().join("data/papalexi2021/papalexi2021_lowmoi.h5ad"))
}

#[test]
fn papalexi_shape_columns_and_perturbations() {
    let r = H5adReader::open(&papalexi()).unwrap();
    assert_eq!((r.n_obs(), r.n_vars()), (20_729, 299));
    let info = r.x_info().unwrap();
    assert_eq!(info.encoding, MatrixEncoding::Csr);
    assert_eq!(info.dtype, "int32");
    let obs = r.read_obs().unwrap();
    let Some(Column::Categorical { categories, codes, .. }) = obs.column("perturbation") else {
        panic!("perturbation must be categorical")
    };
    assert_eq!(categories.len(), 26);
    assert!(categories.iter().any(|c| c == "non-targeting"));
    let nt = categories.iter().position(|c| c == "non-targeting").unwrap() as i32;
    assert_eq!(codes.iter().filter(|&&c| c == nt).count(), 2_386);
    assert!(matches!(obs.column("is_control"), Some(Column::Bool(_))));
    assert!(matches!(obs.column("guide_umi_total"), Some(Column::Int(_))));
    let x = r.read_x().unwrap();
    assert_eq!(detect_space(&x), ExpressionSpace::RawCounts);
    // Row-range reads agree with the whole matrix.
    let Matrix::Csr(full) = &x else { panic!("csr expected") };
    let Matrix::Csr(part) = r.read_x_rows(100..250).unwrap() else {
        panic!("csr expected")
    };
    let rows: Vec<usize> = (100..250).collect();
    assert_eq!(part, full.select_rows(&rows));
    // Sparse obsm is densified.
    let grna = r.read_obsm("grna_counts").unwrap();
    assert_eq!((grna.n_rows, grna.n_cols), (20_729, 110));
}

#[test]
fn perturbench_devel_index_name_layers_and_float64() {
    let Some(p) = shared("perturbench_devel/devel_with_counts.h5ad") else {
        return;
    };
    let a = read_h5ad(&p).unwrap();
    assert_eq!((a.n_obs(), a.n_vars()), (5_961, 500));
    // var's index column is called `gene_symbol`, not `_index`.
    assert_eq!(a.var.index_name, "gene_symbol");
    assert_eq!(detect_space(&a.x), ExpressionSpace::Log1p);
    assert_eq!(detect_space(a.layer("counts").unwrap()), ExpressionSpace::RawCounts);
    assert_eq!(a.obs.column("cell_type").unwrap().n_unique(), 4);
}

#[test]
fn glioblastoma_reads() {
    let Some(p) = shared("zhao2021_glioblastoma_panobinostat/glioblastoma_panobinostat.h5ad") else {
        return;
    };
    let a = read_h5ad(&p).unwrap();
    assert_eq!((a.n_obs(), a.n_vars()), (5_000, 300));
}
