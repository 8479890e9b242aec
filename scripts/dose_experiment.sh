#!/usr/bin/env bash
# Held-out-dose experiment (RESULTS.md, "Doses"): a synthetic drug screen with a real dose series
# (Hill curves, 4 drugs x 4 doses x 2 contexts, no null drugs), dose 1 of every drug held out, the demo
# model trained with and without a dose embedding, evaluated by condition, next to simple rules.
#
#   SCALE=target/release/scale WORK=/tmp/doseexp STEPS=4500 scripts/dose_experiment.sh
set -euo pipefail
SCALE=${SCALE:-target/release/scale}
WORK=${WORK:-/tmp/doseexp}
STEPS=${STEPS:-4500}
HERE=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$WORK"
cd "$WORK"
"$SCALE" --quiet synth --out s.h5ad --cells 40000 --genes 300 --perts 16 --contexts 2 --batches 1 \
    --drugs --log1p --seed 5 --null-fraction 0 --truth truth.csv
"$SCALE" --quiet ingest -i s.h5ad -o st --overwrite --pert-col target_gene --control non-targeting \
    --context-col cell_type --dose-col dose
HOLD=DRUG000@1,DRUG001@1,DRUG002@1,DRUG003@1
cp "$HERE/configs/demo.toml" nodose.toml
# µM doses 0.01-10 read as nM (x1000), so log1p spreads them over 2.4-9.2
sed 's/^\[model\]/[model]\nuse_dose = true\ndose_scale = 1000.0/' "$HERE/configs/demo.toml" > dose.toml
for v in dose nodose; do
    rm -rf "run_$v" "pred_$v" "ev_$v"
    "$SCALE" --quiet train --store st --holdout-doses "$HOLD" --config "$v.toml" --steps "$STEPS" --out "run_$v"
    "$SCALE" --quiet predict --run "run_$v" --store st --split test --out "pred_$v"
    "$SCALE" --quiet eval --pred "pred_$v/pred.h5ad" --real "pred_$v/real.h5ad" --pert-col condition \
        --control non-targeting --out "ev_$v"
done
# the baselines on the same split, the held-out cells as template
for k in dose-interp additive linear context-mean; do
    "$SCALE" --quiet baseline --kind "$k" --store st --run run_dose --template pred_dose/real.h5ad --out "base_$k.h5ad"
    "$SCALE" --quiet eval --pred "base_$k.h5ad" --real pred_dose/real.h5ad --pert-col condition \
        --control non-targeting --out "ev_$k" > /dev/null
done
python3 - <<'EOF'
import csv
keys = ["pearson_delta", "overlap_at_N", "discrimination_score_l1", "mae", "de_direction_match", "pearson_edistance"]
print(f"{'predictor':<12} " + " ".join(f"{k:>24}" for k in keys))
for v in ["dose", "nodose", "dose-interp", "additive", "linear", "context-mean"]:
    rows = list(csv.DictReader(open(f"ev_{v}/agg_results.csv")))
    mean = [r for r in rows if r["statistic"] == "mean"][0]
    print(f"{v:<12} " + " ".join(f"{float(mean[k]):>24.4f}" for k in keys))
EOF
python3 "$HERE/scripts/dose_holdout_reference.py" s.h5ad pred_dose/real.h5ad --pert-col target_gene \
    --context-col cell_type --control non-targeting
