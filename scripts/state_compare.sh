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
SCALE=${SCALE:-target/release/scale}
PEERS=${PEERS:-/tmp/peers}
DEMO=${DEMO:-/tmp/demo_state}
WORK=${WORK:-/tmp/state_cmp}
SEED=${SEED:-0}; STEPS=${STEPS:-1500}; LR=${LR:-1e-3}
VARIANTS=${VARIANTS:-onehot genefeat}
PY="$PEERS/venv/bin/python"
HERE=$(cd "$(dirname "$0")" && pwd)
export WANDB_MODE=disabled WANDB_SILENT=true OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1   # torch >= 2.6 and STATE checkpoints (peers README)
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
  /usr/bin/time -v "$PEERS/venv/bin/state" tx train \
    data.kwargs.toml_config_path="$WORK/data/split.toml" \
    data.kwargs.embed_key=null data.kwargs.output_space=all \
    data.kwargs.pert_col=condition data.kwargs.cell_type_key=cell_type \
    data.kwargs.batch_col=dataset data.kwargs.control_pert=control \
    data.kwargs.num_workers=1 data.kwargs.pin_memory=false data.kwargs.basal_mapping_strategy=random \
    model=state_sm model.kwargs.hidden_dim=128 model.kwargs.cell_set_len=32 \
    model.kwargs.n_encoder_layers=1 model.kwargs.n_decoder_layers=1 model.kwargs.loss=energy \
    model.kwargs.transformer_backbone_kwargs.num_hidden_layers=2 \
    model.kwargs.transformer_backbone_kwargs.num_attention_heads=4 \
    model.kwargs.transformer_backbone_kwargs.num_key_value_heads=4 \
    model.kwargs.transformer_backbone_kwargs.head_dim=32 \
    model.kwargs.transformer_backbone_kwargs.intermediate_size=256 \
    training.batch_size=8 training.max_steps="$STEPS" training.lr="$LR" training.train_seed="$SEED" \
    training.gradient_clip_val=10 training.val_freq=500 training.ckpt_every_n_steps=500 \
    +training.log_every_n_steps=50 use_wandb=false output_dir="$WORK/runs" name="$NAME" overwrite=true \
    "${EXTRA[@]}" > "$WORK/logs/train_$NAME.log" 2>&1
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
