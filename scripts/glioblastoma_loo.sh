#!/usr/bin/env bash
# Leave-one-patient-out on the Zhao 2021 glioblastoma panobinostat slices (../shared/data): for each of the
# 5 patients, train on the other 4 patients (both arms) plus this patient's controls, predict this
# patient's panobinostat cells from its controls, and evaluate the model and every baseline against
# the real cells with `scale eval`. Prints one table row per (patient, predictor) and a mean.
# Usage: scripts/glioblastoma_loo.sh [OUT=out/glioblastoma] [CONFIG=configs/demo.toml]
# Env: SCALE (binary, default target/release/scale), DATA (input h5ad), STEPS (override train steps).
set -euo pipefail
OUT=${1:-out/glioblastoma}
CONFIG=${2:-configs/demo.toml}
SCALE=${SCALE:-target/release/scale}
DATA=${DATA:-../shared/data/zhao2021_glioblastoma_panobinostat/glioblastoma_panobinostat.h5ad}
PATIENTS=(PW030 PW032 PW034 PW036 PW040)
mkdir -p "$OUT"
STORE="$OUT/store"
# raw UMI counts -> normalize_total (1e4) + log1p at ingest, as for every other set
"$SCALE" --quiet ingest --input "$DATA" --out "$STORE" --pert-col condition --control ctrl \
  --context-col patient_id --dataset-name glio --normalize --log1p --overwrite
for P in "${PATIENTS[@]}"; do
  D="$OUT/$P"
  mkdir -p "$D"
  cat > "$D/split.toml" <<TOML
[datasets]
glio = "$DATA"

[training]
glio = "train"

[fewshot."glio.$P"]
val = []
test = ["panobinostat"]
TOML
  rm -rf "$D/run" "$D/pred"
  extra=()
  [[ -n "${STEPS:-}" ]] && extra=(--steps "$STEPS")
  "$SCALE" --quiet train --store "$STORE" --split "$D/split.toml" --config "$CONFIG" --out "$D/run" "${extra[@]}"
  "$SCALE" --quiet predict --run "$D/run" --store "$STORE" --split test --out "$D/pred"
  preds=("model:$D/pred/pred.h5ad")
  for K in cell-mean context-mean additive linear; do
    "$SCALE" --quiet baseline --kind "$K" --store "$STORE" --run "$D/run" --template "$D/pred/real.h5ad" \
      --out "$D/baseline_$K.h5ad"
    preds+=("$K:$D/baseline_$K.h5ad")
  done
  for kv in "${preds[@]}"; do
    name=${kv%%:*}; file=${kv#*:}
    rm -rf "$D/eval_$name"
    "$SCALE" --quiet eval --pred "$file" --real "$D/pred/real.h5ad" --pert-col condition --control ctrl \
      --profile full --out "$D/eval_$name" 2>/dev/null
  done
done
python3 - "$OUT" "${PATIENTS[@]}" <<'PY'
import csv, sys, math
out, patients = sys.argv[1], sys.argv[2:]
cols = ["pearson_delta", "overlap_at_N", "precision_at_N", "de_direction_match", "mse_delta", "mae", "de_nsig_counts_real", "de_nsig_counts_pred"]
names = ["model", "cell-mean", "context-mean", "additive", "linear"]
means = {n: {c: [] for c in cols} for n in names}
print("| patient | predictor | " + " | ".join(cols) + " |")
print("|---|---|" + "---|" * len(cols))
for p in patients:
    for n in names:
        with open(f"{out}/{p}/eval_{n}/results.csv") as f:
            row = next(csv.DictReader(f))
        vals = []
        for c in cols:
            v = float(row[c]) if row.get(c, "") != "" else float("nan")
            means[n][c].append(v)
            vals.append(f"{v:.3f}" if not c.startswith("de_nsig") else f"{v:.0f}")
        print(f"| {p} | {n} | " + " | ".join(vals) + " |")
for n in names:
    vals = []
    for c in cols:
        xs = [v for v in means[n][c] if not math.isnan(v)]
        vals.append(f"{sum(xs)/len(xs):.3f}" if xs else "NaN")
    print(f"| **mean** | {n} | " + " | ".join(vals) + " |")
PY
