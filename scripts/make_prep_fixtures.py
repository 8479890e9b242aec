#!/usr/bin/env python3
"""Fixtures for scale-prep's parity tests against scanpy.

Runs scanpy (normalize_total, log1p, highly_variable_genes with flavor "seurat" and "seurat_v3",
with and without batch_key) on small real subsets and writes inputs and expected outputs as .npy
files plus a meta.json under crates/scale-prep/tests/fixtures/<case>/.

Inputs (CSR of raw counts, float32): x_indptr.npy (int64), x_indices.npy (int32), x_data.npy (float32),
x_shape.npy (int64, [n_obs, n_vars]); batch.npy (int32 codes per cell), var_names.txt.

Needs: scanpy, anndata, scikit-misc (seurat_v3 uses skmisc.loess), and /work/shared/data (or
$SCALE_SHARED/data). Usage: python3 scripts/make_prep_fixtures.py
"""

import json
import os
import sys
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import scanpy as sc
import scipy.sparse as sp

warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SCALE_SHARED", ROOT.parent / "shared"))
if not (SHARED / "data").exists():
    SHARED = Path("/work/shared")
OUT = ROOT / "crates" / "scale-prep" / "tests" / "fixtures"


def save(d: Path, name: str, arr) -> None:
    np.save(d / f"{name}.npy", np.ascontiguousarray(arr))


def adata(x, var_names):
    import pandas as pd

    return ad.AnnData(x.copy(), var=pd.DataFrame(index=list(var_names)))


# inplace=False returns the batched "seurat" table in groupby (gene name) order in cutoff mode, so
# every result is re-indexed to the var order
def hvg_seurat(x_log: sp.csr_matrix, var_names, batch, **kw):
    a = adata(x_log, var_names)
    if batch is not None:
        a.obs["batch"] = pd_cat(batch)
        kw["batch_key"] = "batch"
    return sc.pp.highly_variable_genes(a, flavor="seurat", inplace=False, **kw).loc[a.var_names]


def hvg_v3(x_counts: sp.csr_matrix, var_names, batch, n_top):
    a = adata(x_counts, var_names)
    kw = {}
    if batch is not None:
        a.obs["batch"] = pd_cat(batch)
        kw["batch_key"] = "batch"
    df = sc.pp.highly_variable_genes(a, flavor="seurat_v3", n_top_genes=n_top, inplace=False, **kw)
    return df.loc[a.var_names]


def pd_cat(codes):
    import pandas as pd

    return pd.Categorical([f"b{c}" for c in codes])


def make_case(name: str, x: sp.csr_matrix, batch: np.ndarray, var_names, n_top: int) -> None:
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    x = sp.csr_matrix(x, dtype=np.float32)
    x.sort_indices()
    x.eliminate_zeros()
    save(d, "x_indptr", x.indptr.astype(np.int64))
    save(d, "x_indices", x.indices.astype(np.int32))
    save(d, "x_data", x.data.astype(np.float32))
    save(d, "x_shape", np.array(x.shape, dtype=np.int64))
    save(d, "batch", batch.astype(np.int32))
    (d / "var_names.txt").write_text("\n".join(var_names) + "\n")
    meta = {"n_top": n_top, "case": name}

    # normalize_total: CSR path (median over all cells) and dense path (median over non-zero cells)
    a = ad.AnnData(x.copy())
    sc.pp.normalize_total(a)
    norm = a.X
    save(d, "norm_data", norm.data.astype(np.float32))
    counts = np.ravel(x.sum(axis=1))
    meta["target_sum_csr"] = float(np.median(np.asarray(x.sum(axis=1), dtype=np.float32)))
    a = ad.AnnData(x.toarray())
    sc.pp.normalize_total(a)
    save(d, "norm_dense", a.X.astype(np.float32))
    meta["target_sum_dense"] = float(np.median(counts[counts > 0]))
    a = ad.AnnData(x.copy())
    sc.pp.normalize_total(a, target_sum=1e4)
    save(d, "norm1e4_data", a.X.data.astype(np.float32))

    # log1p of the median-normalised matrix: the usual input of flavor="seurat"
    a = ad.AnnData(norm.copy())
    sc.pp.log1p(a)
    logx = a.X
    save(d, "log_data", logx.data.astype(np.float32))

    def dump(prefix, df, cols):
        for c in cols:
            v = df[c].to_numpy()
            v = v.astype(np.bool_) if c == "highly_variable" else v.astype(np.float64)
            save(d, f"{prefix}_{c}", v)

    seurat_cols = ["highly_variable", "means", "dispersions", "dispersions_norm"]
    dump("seurat_top", hvg_seurat(logx, var_names, None, n_top_genes=n_top), seurat_cols)
    dump("seurat_cut", hvg_seurat(logx, var_names, None), seurat_cols)
    dump("seurat_top_batch", hvg_seurat(logx, var_names, batch, n_top_genes=n_top), seurat_cols + ["highly_variable_nbatches"])
    dump("seurat_cut_batch", hvg_seurat(logx, var_names, batch), seurat_cols + ["highly_variable_nbatches"])
    v3_cols = ["highly_variable", "means", "variances", "variances_norm", "highly_variable_rank"]
    dump("v3", hvg_v3(x, var_names, None, n_top), v3_cols)
    dump("v3_batch", hvg_v3(x, var_names, batch, n_top), v3_cols + ["highly_variable_nbatches"])
    # per-batch normalised variances: they show which batch ranks are exact ties (numpy's argsort
    # orders those arbitrarily, so the tests accept any order within a tie)
    for b in np.unique(batch):
        df = hvg_v3(x[batch == b], var_names, None, n_top)
        save(d, f"v3_batch{b}_variances_norm", df["variances_norm"].to_numpy().astype(np.float64))

    (d / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    total = sum(f.stat().st_size for f in d.iterdir())
    print(f"{name}: {x.shape}, nnz {x.nnz}, {total / 1e3:.0f} kB in {d}", file=sys.stderr)


def main() -> None:
    rng = np.random.default_rng(0)
    # Papalexi 2021 ECCITE-seq, 299 genes, integer counts; 500 random cells, batch = bio_rep
    a = ad.read_h5ad(SHARED / "data/papalexi2021_eccite_lowmoi/papalexi2021_lowmoi.h5ad")
    rows = np.sort(rng.choice(a.n_obs, 500, replace=False))
    b = a[rows]
    batch = b.obs["bio_rep"].cat.codes.to_numpy()
    make_case("papalexi", sp.csr_matrix(b.X), batch, list(b.var_names), 50)

    # perturbench devel (Norman + McFaline), layers["counts"]; 300 random cells. Batch = alternating
    # halves: the real `dataset` split leaves ~130 McFaline cells whose tied low means make skmisc's
    # loess stop with "near singularities", so no reference exists for it.
    a = ad.read_h5ad(SHARED / "data/perturbench_devel/devel_with_counts.h5ad")
    rows = np.sort(rng.choice(a.n_obs, 300, replace=False))
    b = a[rows]
    batch = np.arange(len(rows)) % 2
    make_case("perturbench", sp.csr_matrix(b.layers["counts"]), batch, list(b.var_names), 100)


if __name__ == "__main__":
    main()
