#!/usr/bin/env bash
# STATE (pip `arc-state`) vs scale on the demo split: train STATE at scale's demo size on the split that
# `scale demo` writes, predict the same held-out cells with `state tx infer`, lay the prediction out like
# scale's pred.h5ad and evaluate it with the demo's own `scale eval` command. Results: RESULTS.md.
#
# Needs: the peers venv (`PEERS=/tmp/peers ../shared/peers/setup_peers.sh --locked`) and a release `scale`.
# Usage: scripts/state_compare.sh            (from the repository root)
# Env:   SCALE   scale binary            (default target/release/scale)
#        PEERS   peers directory          (default /tmp/peers; venv in $PEERS/venv)
#        DEMO    scale demo output dir    (default /tmp/demo_state; `scale demo` runs if DEMO/pred is absent)
#        WORK    STATE data/runs dir      (default /tmp/state_cmp; keep it outside the repository)
#        SEED    STATE train_seed         (default 0)    STEPS  (default 1500)    LR  (default 1e-3)
#        VARIANTS "onehot genefeat"       (onehot: STATE's default one-hot per condition label;
#                                          genefeat: multi-hot gene features, A+B = e_A + e_B)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib_state.sh
source "$HERE/lib_state.sh"
DEMO=${DEMO:-/tmp/demo_state}
WORK=${WORK:-/tmp/state_cmp}
SEED=${SEED:-0}; STEPS=${STEPS:-1500}; LR=${LR:-1e-3}
VARIANTS=${VARIANTS:-onehot genefeat}
mkdir -p "$WORK/logs"

# 1. scale's demo: split.toml, model, pred/{pred,real}.h5ad, baselines, evals.
if [[ ! -f "$DEMO/pred/pred.h5ad" ]]; then
  "$SCALE" --quiet demo --out "$DEMO" --threads 2
fi

# 2. cell-load's copy of the data (unnamed var index + var['gene_name'], float32 CSR) and the same split
#    pointing at it; the gene feature table for the genefeat variant.
"$PY" "$HERE/state_compare.py" prep data/perturbench_devel/devel.h5ad "$DEMO/split.toml" "$WORK/data"
"$PY" "$HERE/state_compare.py" gene-features "$WORK/data/devel.h5ad" condition control "$WORK/gene_features.pt"
"$PY" "$HERE/state_compare.py" infer-input "$DEMO/pred/real.h5ad" "$WORK/infer_in.h5ad" condition control

for V in $VARIANTS; do
  NAME="${V}_s${SEED}"
  EXTRA=()
  [[ $V == genefeat ]] && EXTRA=(data.kwargs.perturbation_features_file="$WORK/gene_features.pt")
  # 3. Train: configs/demo.toml mapped onto STATE's state_sm (mapping table in RESULTS.md).
  uptime | tee "$WORK/logs/train_$NAME.uptime"
  state_train_demo_size "$WORK/data/split.toml" "$WORK/runs" "$NAME" condition cell_type dataset control \
    "$WORK/logs/train_$NAME.log" "${EXTRA[@]}"
  uptime | tee -a "$WORK/logs/train_$NAME.uptime"
  grep -a "Elapsed\|Maximum resident" "$WORK/logs/train_$NAME.log"

  # 4. Predict the held-out cells (STATE samples basal cells from the controls of the same cell type).
  RUN="$WORK/runs/$NAME"
  "$PY" "$HERE/state_infer_timed.py" --model-dir "$RUN" --checkpoint "$RUN/checkpoints/final.ckpt" \
    --adata "$WORK/infer_in.h5ad" --pert-col condition --celltype-col cell_type --control-pert control \
    --seed 0 --output "$RUN/state_out.h5ad" --quiet | tail -1
  "$PY" "$HERE/state_compare.py" assemble "$RUN/state_out.h5ad" "$DEMO/pred/pred.h5ad" \
    "$DEMO/state_$NAME.h5ad" condition control

  # 5. The demo's eval command, unchanged.
  rm -rf "$DEMO/eval_state_$NAME"
  "$SCALE" --quiet eval --pred "$DEMO/state_$NAME.h5ad" --real "$DEMO/pred/real.h5ad" --pert-col condition \
    --control control --celltype-col cell_type --profile full --out "$DEMO/eval_state_$NAME"
done

ARGS=("scale model=$DEMO/eval_scale")
for V in $VARIANTS; do ARGS+=("STATE $V, seed $SEED=$DEMO/eval_state_${V}_s${SEED}"); done
for B in context-mean additive linear cell-mean; do ARGS+=("$B=$DEMO/eval_$B"); done
python3 "$HERE/state_compare_table.py" "${ARGS[@]}"
