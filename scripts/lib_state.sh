# Sourced by the scripts that run STATE (pip `arc-state`) beside scale: state_compare.sh,
# state_glioblastoma.sh, bench_contention.sh, bench_infer.sh. Defaults and the environment torch needs on
# these 2-core machines (peers README: passive OpenMP waits, 2 threads, no wandb).
# Env: SCALE (default target/release/scale), PEERS (default /tmp/peers; venv in $PEERS/venv).
SCALE=${SCALE:-target/release/scale}
PEERS=${PEERS:-/tmp/peers}
PY="$PEERS/venv/bin/python"
export WANDB_MODE=disabled WANDB_SILENT=true OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1   # torch >= 2.6 and STATE checkpoints (peers README)

# state_train_demo_size SPLIT_TOML RUNS_DIR NAME PERT_COL CELLTYPE_COL BATCH_COL CONTROL LOG [overrides...]
# `state tx train` at scale's demo size: configs/demo.toml mapped onto STATE's state_sm (mapping table in
# RESULTS.md), energy loss, 1 loader worker; output in RUNS_DIR/NAME, log (with /usr/bin/time -v) in LOG.
# Env: STEPS (default 1500), LR (default 1e-3), SEED (default 0).
state_train_demo_size() {
  local split=$1 runs=$2 name=$3 pert_col=$4 ct_col=$5 batch_col=$6 control=$7 log=$8
  shift 8
  /usr/bin/time -v "$PEERS/venv/bin/state" tx train \
    data.kwargs.toml_config_path="$split" \
    data.kwargs.embed_key=null data.kwargs.output_space=all \
    data.kwargs.pert_col="$pert_col" data.kwargs.cell_type_key="$ct_col" \
    data.kwargs.batch_col="$batch_col" data.kwargs.control_pert="$control" \
    data.kwargs.num_workers=1 data.kwargs.pin_memory=false data.kwargs.basal_mapping_strategy=random \
    model=state_sm model.kwargs.hidden_dim=128 model.kwargs.cell_set_len=32 \
    model.kwargs.n_encoder_layers=1 model.kwargs.n_decoder_layers=1 model.kwargs.loss=energy \
    model.kwargs.transformer_backbone_kwargs.num_hidden_layers=2 \
    model.kwargs.transformer_backbone_kwargs.num_attention_heads=4 \
    model.kwargs.transformer_backbone_kwargs.num_key_value_heads=4 \
    model.kwargs.transformer_backbone_kwargs.head_dim=32 \
    model.kwargs.transformer_backbone_kwargs.intermediate_size=256 \
    training.batch_size=8 training.max_steps="${STEPS:-1500}" training.lr="${LR:-1e-3}" \
    training.train_seed="${SEED:-0}" training.gradient_clip_val=10 training.val_freq=500 \
    training.ckpt_every_n_steps=500 +training.log_every_n_steps=50 use_wandb=false output_dir="$runs" \
    name="$name" overwrite=true "$@" > "$log" 2>&1
}
