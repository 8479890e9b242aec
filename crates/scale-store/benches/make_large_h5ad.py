#!/usr/bin/env python
"""A large Perturb-seq-like .h5ad written in chunks with h5py (bounded memory), for the out-of-core
ingest benchmark in docs/bench/store.md. Raw counts, CSR X; obs: gene (200 perturbations + 10%
non-targeting), cell_type (4), gem_group (8), labels in random order so that grouping must move every
row. Follows the anndata on-disk spec (encoding-type attributes), readable by anndata.read_h5ad.

Usage: python make_large_h5ad.py OUT.h5ad [--cells 2000000] [--genes 2000] [--nnz 100] [--seed 0]
"""
import argparse

import h5py
import numpy as np

STR = h5py.string_dtype("utf-8")


def attrs(obj, kind, version):
    obj.attrs["encoding-type"] = kind
    obj.attrs["encoding-version"] = version


def string_array(group, name, values):
    ds = group.create_dataset(name, data=np.array(values, dtype=object), dtype=STR)
    attrs(ds, "string-array", "0.2.0")


def categorical(group, name, codes, categories):
    g = group.create_group(name)
    attrs(g, "categorical", "0.2.0")
    g.attrs["ordered"] = False
    g.create_dataset("codes", data=codes)
    string_array(g, "categories", categories)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--cells", type=int, default=2_000_000)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--nnz", type=int, default=100, help="non-zeros per cell")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=50_000)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    n, g, k = a.cells, a.genes, a.nnz
    with h5py.File(a.out, "w") as f:
        attrs(f, "anndata", "0.1.0")
        x = f.create_group("X")
        attrs(x, "csr_matrix", "0.1.0")
        x.attrs["shape"] = np.array([n, g], dtype=np.int64)
        data = x.create_dataset("data", shape=(n * k,), dtype=np.float32, chunks=(min(1 << 18, n * k),))
        indices = x.create_dataset("indices", shape=(n * k,), dtype=np.int32, chunks=(min(1 << 18, n * k),))
        x.create_dataset("indptr", data=np.arange(n + 1, dtype=np.int64) * k)
        for start in range(0, n, a.chunk):
            m = min(a.chunk, n - start)
            # k distinct sorted genes per cell: the k smallest of g random keys.
            keys = rng.random((m, g), dtype=np.float32)
            cols = np.sort(np.argpartition(keys, k, axis=1)[:, :k], axis=1).astype(np.int32)
            vals = rng.integers(1, 6, size=(m, k)).astype(np.float32)
            indices[start * k:(start + m) * k] = cols.ravel()
            data[start * k:(start + m) * k] = vals.ravel()
        obs = f.create_group("obs")
        attrs(obs, "dataframe", "0.2.0")
        obs.attrs["_index"] = "_index"
        obs.attrs.create("column-order", ["gene", "cell_type", "gem_group"], dtype=STR)
        string_array(obs, "_index", [f"c{i}" for i in range(n)])
        perts = ["non-targeting"] + [f"P{i:03d}" for i in range(200)]
        codes = np.where(rng.random(n) < 0.1, 0, rng.integers(1, len(perts), n)).astype(np.int16)
        # Categories sorted as pandas does: "P..." < "non-targeting".
        order = sorted(range(len(perts)), key=lambda i: perts[i])
        remap = np.empty(len(perts), dtype=np.int16)
        remap[order] = np.arange(len(perts), dtype=np.int16)
        categorical(obs, "gene", remap[codes], [perts[i] for i in order])
        categorical(obs, "cell_type", rng.integers(0, 4, n).astype(np.int8), [f"ct{i}" for i in range(4)])
        categorical(obs, "gem_group", rng.integers(0, 8, n).astype(np.int8), [f"gem{i}" for i in range(8)])
        var = f.create_group("var")
        attrs(var, "dataframe", "0.2.0")
        var.attrs["_index"] = "_index"
        var.attrs["column-order"] = np.array([], dtype=np.float64)
        string_array(var, "_index", [f"G{i:05d}" for i in range(g)])
        for name in ["obsm", "varm", "obsp", "varp", "layers", "uns"]:
            attrs(f.create_group(name), "dict", "0.1.0")


if __name__ == "__main__":
    main()
