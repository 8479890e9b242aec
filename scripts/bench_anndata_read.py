#!/usr/bin/env python3
"""Peer side of the h5ad read benchmark: anndata.read_h5ad of the whole file, best of N.
Usage: bench_anndata_read.py FILE [REPEAT]"""
import os
import sys
import time

import anndata as ad

path = sys.argv[1]
repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
best = float("inf")
for _ in range(repeat):
    t = time.perf_counter()
    a = ad.read_h5ad(path)
    best = min(best, time.perf_counter() - t)
mb = os.path.getsize(path) / 1e6
print(f"{path}: best of {repeat}: {best:.3f} s, {a.n_obs / best:.0f} cells/s, {mb / best:.1f} MB/s")
