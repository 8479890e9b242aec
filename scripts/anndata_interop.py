#!/usr/bin/env python3
"""Interop instrument for scale's h5ad reader/writer, run by crates/scale-io/tests/anndata_interop.rs.

  anndata_interop.py make DIR        write test files with Python anndata (CSR/CSC/dense X, categoricals with
                                     int8/int16/int32 codes, non-ASCII names, scanpy's pbmc68k_reduced)
  anndata_interop.py summary FILE    print a canonical JSON summary of FILE as Python anndata reads it

The Rust test builds the same summary from scale's reader and compares them, and has Python summarise
files that scale wrote (so Python anndata must read them back with equal contents).
"""
import json
import sys

import numpy as np


def summary(path):
    import anndata as ad
    import scipy.sparse as sp

    a = ad.read_h5ad(path)
    X = a.X
    Xd = X.toarray() if sp.issparse(X) else np.asarray(X)
    Xd = Xd.astype(np.float64)

    def col(s):
        import pandas as pd

        if isinstance(s.dtype, pd.CategoricalDtype):
            return {"kind": "categorical", "values": ["" if pd.isna(v) else str(v) for v in s.tolist()],
                    "categories": [str(c) for c in s.cat.categories]}
        if s.dtype == bool:
            return {"kind": "bool", "values": [bool(v) for v in s]}
        if np.issubdtype(s.dtype, np.integer):
            return {"kind": "int", "values": [int(v) for v in s]}
        if np.issubdtype(s.dtype, np.floating):
            return {"kind": "float", "values": [None if np.isnan(v) else float(v) for v in s]}
        return {"kind": "string", "values": [str(v) for v in s]}

    def mat(m):
        m = m.toarray() if sp.issparse(m) else np.asarray(m)
        return {"shape": list(m.shape), "sum": float(m.astype(np.float64).sum()),
                "row_sums": [float(v) for v in m.astype(np.float64).sum(axis=1)[:50]]}

    out = {
        "shape": list(a.shape),
        "x": {"shape": list(Xd.shape), "sum": float(Xd.sum()), "row_sums": [float(v) for v in Xd.sum(axis=1)[:50]],
              "col_sums": [float(v) for v in Xd.sum(axis=0)[:50]], "nnz": int((Xd != 0).sum())},
        "obs_index": [str(v) for v in a.obs_names[:100]],
        "var_index": [str(v) for v in a.var_names],
        "obs": {k: col(a.obs[k]) for k in a.obs.columns},
        "var": {k: col(a.var[k]) for k in a.var.columns},
        "obsm": {k: mat(v) for k, v in a.obsm.items() if not hasattr(v, "columns")},
        "layers": {k: mat(v) for k, v in a.layers.items()},
        "uns": {k: v for k, v in a.uns.items() if isinstance(v, str)},
    }
    # Long columns: compare the first 100 values only (keeps the JSON small).
    for frame in (out["obs"], out["var"]):
        for v in frame.values():
            v["values"] = v["values"][:100]
    json.dump(out, sys.stdout)


def make(outdir):
    import os

    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    os.makedirs(outdir, exist_ok=True)
    rng = np.random.default_rng(0)
    n, g = 300, 40
    counts = rng.negative_binomial(2, 0.5, size=(n, g)).astype(np.float32)
    genes = [f"GENE{i}" for i in range(g)]
    cells = [f"cell{i:04d}" for i in range(n)]
    labels = np.array(["non-targeting", "STAT1", "Ünïcødé-β", "干扰素"])[rng.integers(0, 4, n)]
    obs = pd.DataFrame(
        {
            "target_gene": pd.Categorical(labels),
            "n_counts": counts.sum(1).astype(np.int64),
            "frac": rng.random(n),
            "is_ctrl": labels == "non-targeting",
            "note": [f"free text {i}" for i in range(n)],
            "many16": pd.Categorical([f"c{i % 200}" for i in range(n)]),
        },
        index=cells,
    )
    var = pd.DataFrame({"highly_variable": rng.random(g) > 0.5}, index=pd.Index(genes, name="gene_symbol"))
    a = ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=var)
    a.obsm["X_pca"] = rng.normal(size=(n, 5)).astype(np.float32)
    a.layers["counts"] = sp.csr_matrix(counts)
    a.uns["note"] = "written by anndata"
    a.write_h5ad(f"{outdir}/csr_float32.h5ad")
    b = a.copy()
    b.X = sp.csc_matrix(np.log1p(counts).astype(np.float64))
    b.write_h5ad(f"{outdir}/csc_float64.h5ad", compression="gzip")
    c = a.copy()
    c.X = counts.astype(np.int32)
    c.write_h5ad(f"{outdir}/dense_int32.h5ad")
    # int32 codes need more than 32,767 categories.
    m = 33000
    big = ad.AnnData(X=np.zeros((m, 2), dtype=np.float32),
                     obs=pd.DataFrame({"cat32": pd.Categorical([f"k{i}" for i in range(m)])},
                                      index=[f"r{i}" for i in range(m)]))
    big.write_h5ad(f"{outdir}/codes_int32.h5ad")
    import scanpy as sc

    p = sc.datasets.pbmc68k_reduced()
    p.write_h5ad(f"{outdir}/pbmc68k_reduced_dense.h5ad")
    p2 = p.copy()
    p2.X = sp.csr_matrix(p2.X)
    p2.write_h5ad(f"{outdir}/pbmc68k_reduced_csr.h5ad")


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    elif sys.argv[1] == "summary":
        summary(sys.argv[2])
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")
