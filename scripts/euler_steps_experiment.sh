#!/usr/bin/env bash
# Euler steps at inference (`scale predict --euler-steps K`) on trained runs, without retraining: on the
# glioblastoma leave-one-patient-out folds of scripts/glioblastoma_loo.sh (run that first, same OUT).
# Predicts each fold's held-out patient with K = 1, 2, 4, 8 steps (count rounding on and off), evaluates
# with `scale eval --profile full`, and prints the mean over the folds per setting.
# Usage: scripts/euler_steps_experiment.sh [OUT=out/glioblastoma]     Env: SCALE, KS (default "1 2 4 8")
set -euo pipefail
OUT=${1:-out/glioblastoma}
SCALE=${SCALE:-target/release/scale}
KS=${KS:-1 2 4 8}
PATIENTS=(PW030 PW032 PW034 PW036 PW040)
for P in "${PATIENTS[@]}"; do
  D="$OUT/$P"
  for K in $KS; do
    for R in stochastic off; do
      name="k${K}_${R}"
      rm -rf "$D/pred_$name" "$D/evalk_$name"
      "$SCALE" --quiet predict --run "$D/run" --store "$OUT/store" --split test --out "$D/pred_$name" \
        --euler-steps "$K" --count-rounding "$R"
      "$SCALE" --quiet eval --pred "$D/pred_$name/pred.h5ad" --real "$D/pred_$name/real.h5ad" \
        --pert-col condition --control ctrl --profile full --out "$D/evalk_$name" 2>/dev/null
    done
  done
done
python3 - "$OUT" "$KS" "${PATIENTS[@]}" <<'PY'
import csv, sys, math
out, ks, patients = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
cols = ["pearson_delta", "overlap_at_N", "precision_at_N", "de_direction_match", "mse_delta", "mae", "de_nsig_counts_pred"]
print("| K | count rounding | " + " | ".join(cols) + " |")
print("|---|---|" + "---|" * len(cols))
for k in ks:
    for r in ["stochastic", "off"]:
        vals = []
        for c in cols:
            xs = []
            for p in patients:
                with open(f"{out}/{p}/evalk_k{k}_{r}/results.csv") as f:
                    row = next(csv.DictReader(f))
                v = float(row[c]) if row.get(c, "") != "" else float("nan")
                if not math.isnan(v):
                    xs.append(v)
            vals.append(f"{sum(xs)/len(xs):.3f}" if xs else "NaN")
        print(f"| {k} | {r} | " + " | ".join(vals) + " |")
PY
