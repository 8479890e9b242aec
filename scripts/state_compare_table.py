#!/usr/bin/env python
"""Markdown table of `scale eval` aggregate means (the columns of RESULTS.md's demo table).

Usage: python scripts/state_compare_table.py LABEL=EVAL_DIR [LABEL=EVAL_DIR ...]
Each EVAL_DIR holds `{cell line}_agg_results.csv` files written by `scale eval --celltype-col ...`.
"""
import csv
import glob
import math
import os
import sys

COLS = ["pearson_delta", "overlap_at_N", "discrimination_score_l1", "de_direction_match", "mse_delta", "mae",
        "pearson_edistance"]
ARROW = {"mse_delta": "↓", "mae": "↓"}


def means(path):
    with open(path) as f:
        rows = {r["statistic"]: r for r in csv.DictReader(f)}
    return {c: float(rows["mean"].get(c, "nan") or "nan") for c in COLS}


def fmt(c, v):
    if math.isnan(v):
        return "NaN"
    return f"{v:.4f}" if c in ("mse_delta", "mae") else f"{v:.3f}"


print("| predictor [cell line] | " + " | ".join(f"{c} {ARROW.get(c, '↑')}" for c in COLS) + " |")
print("|---" * (len(COLS) + 1) + "|")
rows = []
for arg in sys.argv[1:]:
    label, d = arg.split("=", 1)
    for f in sorted(glob.glob(os.path.join(d, "*_agg_results.csv"))):
        ct = os.path.basename(f)[: -len("_agg_results.csv")]
        rows.append((ct, label, means(f)))
for ct in sorted({r[0] for r in rows}, key=lambda s: (s.lower() != "u87mg", s)):
    for c2, label, m in rows:
        if c2 == ct:
            print(f"| {label} [{ct}] | " + " | ".join(fmt(c, m[c]) for c in COLS) + " |")
