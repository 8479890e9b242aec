"""Row-read throughput of a BioNeMo SCDL dataset into dense batches (companion of scripts/bench_scdl.sh).

    /tmp/scdlvenv/bin/convert_h5ad_to_scdl --data-path DIR_WITH_H5AD --save-path /tmp/x.scdl --use-X-not-raw
    /tmp/scdlvenv/bin/python scripts/bench_scdl_read.py /tmp/x.scdl --rows-per-batch 512 --batches 200

Each batch is `--rows-per-batch` rows drawn uniformly at random (seeded), written into a reused
(rows, genes) float32 buffer as scale's sampler fills its reused dense buffers, through one of SCDL's public
row readers: `--mode padded` (`SingleCellMemMapDataset.get_row_padded`, a dense row) or `--mode sparse`
(`get_row`, the row's values and column indices, scattered into the zeroed buffer row with numpy). One Python thread. Prints rows/s. 512 rows per
batch = scale's default sampler batch (B=8 sets x S=32 cells, perturbed + control rows).
"""

import argparse
import time

import numpy as np
from bionemo.scdl.io.single_cell_memmap_dataset import SingleCellMemMapDataset


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scdl_path")
    ap.add_argument("--rows-per-batch", type=int, default=512)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", choices=["padded", "sparse"], default="padded")
    a = ap.parse_args()

    t0 = time.perf_counter()
    ds = SingleCellMemMapDataset(a.scdl_path)
    t_open = time.perf_counter() - t0
    n = ds.number_of_rows()
    genes = ds.number_of_variables()[0]
    rng = np.random.default_rng(a.seed)
    buf = np.zeros((a.rows_per_batch, genes), dtype=np.float32)
    checksum = 0.0

    def one_batch():
        idx = rng.integers(0, n, size=a.rows_per_batch)
        if a.mode == "padded":
            for k, i in enumerate(idx):
                buf[k] = ds.get_row_padded(int(i))[0]
        else:
            buf[:] = 0.0
            for k, i in enumerate(idx):
                (vals, cols), _, _ = ds.get_row(int(i))
                buf[k, cols] = vals
        return float(buf[:, 0].sum())

    for _ in range(a.warmup):
        checksum += one_batch()
    t0 = time.perf_counter()
    for _ in range(a.batches):
        checksum += one_batch()
    dt = time.perf_counter() - t0
    rows = a.batches * a.rows_per_batch
    print(
        f"scdl read ({a.mode}): {n} rows x {genes} genes, open {t_open:.2f} s; {a.batches} batches of {a.rows_per_batch} "
        f"random rows in {dt:.2f} s: {rows / dt:.0f} rows/s [checksum {checksum:.3f}]"
    )


if __name__ == "__main__":
    main()
