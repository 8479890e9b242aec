#!/usr/bin/env bash
# Pairing of control and perturbed cells on the training path (`[transport] coupling`), demo split:
# endpoint and direct formulations, independent and optimal-transport pairing, seeds 0, 1, 2 (12 runs of
# `scale demo`, about 40 s each on 2 cores). Prints the per-cell-line mean over seeds (min–max).
# For the glioblastoma folds: scripts/glioblastoma_loo.sh OUT CONFIG with the configs written here.
# Usage: scripts/coupling_experiment.sh [OUT=out/coupling]     Env: SCALE (default target/release/scale)
set -euo pipefail
OUT=${1:-out/coupling}
SCALE=${SCALE:-target/release/scale}
mkdir -p "$OUT"
for mode in endpoint direct; do
  for coupling in independent ot; do
    for seed in 0 1 2; do
      name="${mode}_${coupling}_s${seed}"
      sed -e "s/^mode = \"endpoint\"/mode = \"$mode\"/" -e "s/^euler_steps = 1/euler_steps = 1\ncoupling = \"$coupling\"/" \
        -e "s/^seed = 0/seed = $seed/" configs/demo.toml > "$OUT/$name.toml"
      rm -rf "${OUT:?}/$name"
      "$SCALE" --quiet demo --config "$OUT/$name.toml" --out "$OUT/$name" --threads 2 > "$OUT/$name.log" 2>&1
    done
  done
done
python3 - "$OUT" <<'PY'
import csv, statistics as st, sys
out = sys.argv[1]
cols = ["pearson_delta", "overlap_at_N", "discrimination_score_l1", "mse_delta", "mae", "pearson_edistance"]
print("| formulation, coupling [cell line] | " + " | ".join(cols) + " |")
print("|---|" + "---|" * len(cols))
for ct in ["U87MG", "k562"]:
    for mode in ["endpoint", "direct"]:
        for coupling in ["independent", "ot"]:
            vals = {c: [] for c in cols}
            for seed in range(3):
                rows = list(csv.DictReader(open(f"{out}/{mode}_{coupling}_s{seed}/eval_scale/{ct}_agg_results.csv")))
                mean = next(r for r in rows if r["statistic"] == "mean")
                for c in cols:
                    vals[c].append(float(mean[c]))
            cells = [f"{st.mean(v):.4f}" if c in ("mse_delta", "mae") else f"{st.mean(v):.3f} ({min(v):.2f}–{max(v):.2f})"
                     for c, v in vals.items()]
            print(f"| {mode}, {coupling} [{ct}] | " + " | ".join(cells) + " |")
PY
