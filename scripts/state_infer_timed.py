#!/usr/bin/env python
"""`state tx infer` with timings: runs STATE's own CLI entry point unchanged, and wraps
`StateTransitionPerturbationModel.predict_step` to add up the time and cells of the model's forward passes.

Usage (peers venv): python state_infer_timed.py <the arguments of `state tx infer`, without `state tx infer`>
Prints one JSON line: total seconds of run_tx_infer (read input, load model, simulate, write output),
forward-pass seconds, cells forwarded, cells/s for both.
"""
import json
import sys
import time

import torch

from state._cli import run_tx_infer
from state._cli._tx import add_arguments_infer  # noqa: F401  (argument parser of the CLI)
from state.tx.models.state_transition import StateTransitionPerturbationModel

fwd = {"s": 0.0, "cells": 0, "calls": 0}
_orig = StateTransitionPerturbationModel.predict_step


def timed(self, batch, batch_idx, padded=True, **kw):
    t0 = time.perf_counter()
    out = _orig(self, batch, batch_idx, padded=padded, **kw)
    fwd["s"] += time.perf_counter() - t0
    fwd["cells"] += int(batch["ctrl_cell_emb"].shape[0])
    fwd["calls"] += 1
    return out


StateTransitionPerturbationModel.predict_step = timed

if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser()
    add_arguments_infer(p)
    args = p.parse_args(sys.argv[1:])
    t0 = time.perf_counter()
    run_tx_infer(args)
    total = time.perf_counter() - t0
    print(json.dumps({
        "torch_threads": torch.get_num_threads(),
        "run_tx_infer_s": round(total, 3),
        "forward_s": round(fwd["s"], 4),
        "forward_calls": fwd["calls"],
        "cells_forwarded": fwd["cells"],
        "forward_cells_per_s": round(fwd["cells"] / max(fwd["s"], 1e-9), 1),
        "run_tx_infer_cells_per_s": round(fwd["cells"] / total, 1),
    }))
