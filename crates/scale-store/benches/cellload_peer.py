#!/usr/bin/env python
"""Peer measurement for docs/bench/store.md: cell-load's PerturbationDataModule train loader throughput on
an h5ad, in the unit scale's sampler bench reports (perturbed cells per second, each with a matched
control; B sets x S cells per batch, dense genes).

Usage: python cellload_peer.py FILE.h5ad [--sets 8] [--set-size 32] [--workers 0] [--batches 50]
Needs `pip install cell-load==0.10.4` (tested in a /tmp venv). Prints one JSON line.
"""
import argparse
import json
import os
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("h5ad")
    ap.add_argument("--sets", type=int, default=8)
    ap.add_argument("--set-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--pert-col", default="target_gene")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from cell_load.data_modules import PerturbationDataModule

    tmp = tempfile.mkdtemp(prefix="cellload_bench_")
    data_dir = os.path.join(tmp, "data")
    os.makedirs(data_dir)
    os.symlink(os.path.abspath(args.h5ad), os.path.join(data_dir, os.path.basename(args.h5ad)))
    toml = os.path.join(tmp, "split.toml")
    with open(toml, "w") as f:
        f.write(f'[datasets]\nsynth = "{data_dir}"\n\n[training]\nsynth = "train"\n')
    t0 = time.perf_counter()
    dm = PerturbationDataModule(
        toml_config_path=toml,
        batch_size=args.sets,
        num_workers=args.workers,
        pert_col=args.pert_col,
        batch_col="gem_group",
        cell_type_key="cell_type",
        control_pert="non-targeting",
        cell_sentence_len=args.set_size,
        basal_mapping_strategy="batch",
        output_space="gene",
    )
    dm.setup(stage="fit")
    t_setup = time.perf_counter() - t0
    dl = dm.train_dataloader()
    it = iter(dl)
    first = next(it)  # warm-up (worker start, file open)
    shape = tuple(first["pert_cell_emb"].shape)
    t0 = time.perf_counter()
    n_cells = 0
    for _ in range(args.batches):
        try:
            b = next(it)
        except StopIteration:
            it = iter(dl)
            b = next(it)
        n_cells += b["pert_cell_emb"].shape[0]
    dt = time.perf_counter() - t0
    print(
        json.dumps(
            dict(
                tool="cell-load",
                h5ad=args.h5ad,
                sets=args.sets,
                set_size=args.set_size,
                workers=args.workers,
                batches=args.batches,
                batch_shape=shape,
                setup_s=round(t_setup, 3),
                seconds=round(dt, 3),
                cells_per_s=round(n_cells / dt, 1),
            )
        )
    )


if __name__ == "__main__":
    main()
