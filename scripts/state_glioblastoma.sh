#!/usr/bin/env bash
# STATE (pip `arc-state`) on the glioblastoma leave-one-patient-out folds of scripts/glioblastoma_loo.sh:
# for each patient, train STATE on the fold's training part at the demo size (same mapping as
# scripts/state_compare.sh), predict the patient's panobinostat cells from its controls with
# `state tx infer`, lay the prediction out like scale's pred.h5ad and evaluate it with the fold's own
# `scale eval` command. Results: RESULTS.md ("Held-out patient").
#
# Needs: the peers venv (`PEERS=/tmp/peers ../shared/peers/setup_peers.sh --locked`), a release `scale`, and
# the output of scripts/glioblastoma_loo.sh (each fold's pred/real.h5ad and pred/pred.h5ad).
# Usage: scripts/state_glioblastoma.sh [LOO_OUT=out/glioblastoma]     (from the repository root)
# Env:   SCALE (default target/release/scale)  PEERS (default /tmp/peers)  WORK (default /tmp/state_glio)
#        DATA (the raw-count h5ad)  SEED (default 0)  STEPS (default 1500)  LR (default 1e-3)
set -euo pipefail
LOO=${1:-out/glioblastoma}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib_state.sh
source "$HERE/lib_state.sh"
WORK=${WORK:-/tmp/state_glio}
DATA=${DATA:-../shared/data/zhao2021_glioblastoma_panobinostat/glioblastoma_panobinostat.h5ad}
SEED=${SEED:-0}; STEPS=${STEPS:-1500}; LR=${LR:-1e-3}
PATIENTS=(PW030 PW032 PW034 PW036 PW040)
mkdir -p "$WORK"

# The same expression space scale trains on: normalize_total(1e4) + log1p of the raw counts.
"$PY" - "$DATA" "$WORK/glio.h5ad" <<'PY'
import sys
import anndata as ad
import numpy as np
import scipy.sparse as sp
a = ad.read_h5ad(sys.argv[1])
x = sp.csr_matrix(a.X, dtype=np.float64)
tot = np.asarray(x.sum(axis=1)).ravel()
x = sp.diags(1e4 / np.where(tot > 0, tot, 1.0)) @ x
x.data = np.log1p(x.data)
a.X = sp.csr_matrix(x, dtype=np.float32)
a.write_h5ad(sys.argv[2])
print(f"wrote {sys.argv[2]}: {a.n_obs} x {a.n_vars}, log1p(normalize_total 1e4)")
PY

for P in "${PATIENTS[@]}"; do
  D="$LOO/$P"
  W="$WORK/$P"
  mkdir -p "$W"
  # the fold's split, pointing at the normalised copy (cell-load layout: var['gene_name'], unnamed index)
  sed "/^\[datasets\]/,/^\[training\]/ s#^glio = \".*\"#glio = \"$WORK/glio.h5ad\"#" "$D/split.toml" > "$W/split_src.toml"
  "$PY" "$HERE/state_compare.py" prep "$WORK/glio.h5ad" "$W/split_src.toml" "$W/data"
  "$PY" "$HERE/state_compare.py" infer-input "$D/pred/real.h5ad" "$W/infer_in.h5ad" condition ctrl
  NAME="state_${P}_s${SEED}"
  state_train_demo_size "$W/data/split.toml" "$WORK/runs" "$NAME" condition patient_id patient_id ctrl \
    "$W/train.log"
  grep -a "Elapsed\|Maximum resident" "$W/train.log"
  RUN="$WORK/runs/$NAME"
  "$PY" "$HERE/state_infer_timed.py" --model-dir "$RUN" --checkpoint "$RUN/checkpoints/final.ckpt" \
    --adata "$W/infer_in.h5ad" --pert-col condition --celltype-col patient_id --control-pert ctrl \
    --seed 0 --output "$RUN/state_out.h5ad" --quiet | tail -1
  "$PY" "$HERE/state_compare.py" assemble "$RUN/state_out.h5ad" "$D/pred/pred.h5ad" "$D/state.h5ad" condition ctrl
  rm -rf "$D/eval_state"
  "$SCALE" --quiet eval --pred "$D/state.h5ad" --real "$D/pred/real.h5ad" --pert-col condition --control ctrl \
    --profile full --out "$D/eval_state" 2>/dev/null
done
echo "per-fold results: $LOO/PW*/eval_state/results.csv"
