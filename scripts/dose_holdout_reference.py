#!/usr/bin/env python3
"""Reference numbers for a held-out-dose split: how well simple rules predict the held-out dose.

For every held-out (perturbation, dose, context) condition of `real.h5ad` (from `scale predict --split
test` on a store ingested with `--dose-col`), the pseudobulk delta (condition mean - control mean of the
context, in the file's log1p space) is compared, with Pearson's r over genes as cell-eval's
`pearson_delta`, against deltas built from the *training* doses of the same perturbation and context in
the ingested input:

- `next_lower` / `next_higher`: the delta at the nearest trained dose below / above;
- `interp_log`: linear interpolation in log10(dose) between those two (the nearest one at the ends);
- `all_doses`: the mean delta over every trained dose (what a model that ignores doses can at best learn);
- `split_half`: two halves of the real held-out cells against each other (a noise ceiling).

Usage: dose_holdout_reference.py INPUT.h5ad REAL.h5ad --pert-col P --context-col C --control L [--dose-col dose]
"""

import argparse

import anndata as ad
import numpy as np


def dense(x):
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("real")
    ap.add_argument("--pert-col", required=True)
    ap.add_argument("--context-col", required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("--dose-col", default="dose")
    a = ap.parse_args()

    inp = ad.read_h5ad(a.input)
    x = dense(inp.X).astype(np.float64)
    pert = inp.obs[a.pert_col].astype(str).values
    ctx = inp.obs[a.context_col].astype(str).values
    dose = inp.obs[a.dose_col].astype(float).values.astype(np.float32)
    real = ad.read_h5ad(a.real)
    held = real.obs[real.obs[a.pert_col].astype(str) != a.control]
    conds = sorted({(p, float(d), c) for p, d, c in zip(held[a.pert_col].astype(str), held[a.dose_col], held[a.context_col].astype(str))})

    def mean(mask):
        return x[mask].mean(0)

    r = lambda u, v: float(np.corrcoef(u, v)[0, 1])
    table = {k: [] for k in ["next_lower", "next_higher", "interp_log", "all_doses", "split_half"]}
    for p, d, c in conds:
        d = np.float32(d)
        ctrl = mean((pert == a.control) & (ctx == c))
        sel = (pert == p) & (ctx == c)
        truth = mean(sel & (dose == d)) - ctrl
        trained = sorted({float(v) for v in dose[sel]} - {float(d)})
        deltas = {t: mean(sel & (dose == np.float32(t))) - ctrl for t in trained}
        lo = [t for t in trained if t < d]
        hi = [t for t in trained if t > d]
        lower = deltas[lo[-1]] if lo else deltas[hi[0]]
        higher = deltas[hi[0]] if hi else deltas[lo[-1]]
        if lo and hi and lo[-1] > 0:
            w = (np.log10(d) - np.log10(lo[-1])) / (np.log10(hi[0]) - np.log10(lo[-1]))
            interp = (1 - w) * lower + w * higher
        else:
            interp = lower if lo else higher
        idx = np.where(sel & (dose == d))[0]
        table["next_lower"].append(r(truth, lower))
        table["next_higher"].append(r(truth, higher))
        table["interp_log"].append(r(truth, interp))
        table["all_doses"].append(r(truth, np.mean([deltas[t] for t in trained], 0)))
        table["split_half"].append(r(mean(np.isin(np.arange(len(x)), idx[::2])) - ctrl, mean(np.isin(np.arange(len(x)), idx[1::2])) - ctrl))
    print(f"{len(conds)} held-out conditions; mean pearson_delta of each rule:")
    for k, v in table.items():
        print(f"  {k:<12} {np.mean(v):.4f}")


if __name__ == "__main__":
    main()
