#!/usr/bin/env bash
# Training under CPU contention, STATE and scale side by side: the STATE-tiny config (hidden 128, 2 layers,
# 4 heads x 32, MLP 512, 8 sets x 32 cells, 2,000 genes, energy loss, 1 loader worker), 300 steps each, with a
# second CPU-bound job (`python3 -c 'while 1: pass'`, one full core) running for the whole of both runs.
# Steady it/s: STATE from its checkpoint times (steps 100 -> 300, `ckpt_every_n_steps=100`), scale from
# its own 300-step log line. Results: docs/bench/model.md ("Under contention, side by side").
#
# Needs: the peers venv (`PEERS=/tmp/peers ../shared/peers/setup_peers.sh --locked`) and a release `scale`.
# Usage: scripts/bench_contention.sh          (from the repository root)
# Env:   SCALE (default target/release/scale)  PEERS (default /tmp/peers)  WORK (default /tmp/bench_contention)
set -euo pipefail
SCALE=${SCALE:-target/release/scale}
PEERS=${PEERS:-/tmp/peers}
WORK=${WORK:-/tmp/bench_contention}
HERE=$(cd "$(dirname "$0")" && pwd)
PY="$PEERS/venv/bin/python"
export WANDB_MODE=disabled WANDB_SILENT=true OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
mkdir -p "$WORK"

# The synthetic set of the model benchmarks (20,000 cells x 2,000 genes, 50 knock-downs, 4 batches).
if [[ ! -f "$WORK/syn.h5ad" ]]; then
  "$SCALE" --quiet synth --out "$WORK/syn.h5ad" --cells 20000 --genes 2000 --perts 50 --contexts 1 --batches 4 \
    --seed 1 --log1p
fi
rm -rf "$WORK/store"
"$SCALE" --quiet ingest --input "$WORK/syn.h5ad" --out "$WORK/store" --pert-col target_gene \
  --control non-targeting --batch-col gem_group
cat > "$WORK/split.toml" <<TOML
[datasets]
syn = "$WORK/syn.h5ad"

[training]
syn = "train"

[fewshot."syn.context0"]
val = ["GENE0006"]
test = ["GENE0035"]
TOML
"$PY" "$HERE/state_compare.py" prep "$WORK/syn.h5ad" "$WORK/split.toml" "$WORK/cl"

python3 -c 'while 1: pass' &
BUSY=$!
trap 'kill $BUSY 2>/dev/null || true' EXIT
sleep 5

echo "== STATE, load $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$WORK/runs/state"
start=$(date +%s.%N)
/usr/bin/time -v "$PEERS/venv/bin/state" tx train \
  data.kwargs.toml_config_path="$WORK/cl/split.toml" data.kwargs.embed_key=null data.kwargs.output_space=all \
  data.kwargs.pert_col=target_gene data.kwargs.cell_type_key=cell_type data.kwargs.batch_col=gem_group \
  data.kwargs.control_pert=non-targeting data.kwargs.num_workers=1 data.kwargs.pin_memory=false \
  data.kwargs.basal_mapping_strategy=random model=state_sm model.kwargs.hidden_dim=128 \
  model.kwargs.cell_set_len=32 model.kwargs.n_encoder_layers=1 model.kwargs.n_decoder_layers=1 \
  model.kwargs.loss=energy model.kwargs.transformer_backbone_kwargs.num_hidden_layers=2 \
  model.kwargs.transformer_backbone_kwargs.num_attention_heads=4 \
  model.kwargs.transformer_backbone_kwargs.num_key_value_heads=4 \
  model.kwargs.transformer_backbone_kwargs.head_dim=32 \
  model.kwargs.transformer_backbone_kwargs.intermediate_size=512 \
  training.batch_size=8 training.max_steps=300 training.val_freq=1000 training.ckpt_every_n_steps=100 \
  use_wandb=false output_dir="$WORK/runs" name=state overwrite=true > "$WORK/state.log" 2>&1
grep -a "Elapsed\|Maximum resident" "$WORK/state.log"
"$PY" - "$WORK/runs/state/checkpoints" <<'PY'
import os, re, sys
d = sys.argv[1]
t = {}
for f in os.listdir(d):
    m = re.search(r"step=(\d+)", f)
    if m:
        t[int(m.group(1))] = os.path.getmtime(os.path.join(d, f))
steps = sorted(t)
print("STATE checkpoints at steps", steps)
lo, hi = [s for s in steps if s >= 99][0], steps[-1]
print(f"STATE steady it/s (steps {lo}->{hi}): {(hi - lo) / (t[hi] - t[lo]):.2f}")
PY
echo "   after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== scale, load $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$WORK/runs/scale"
/usr/bin/time -v "$SCALE" train --store "$WORK/store" --holdout-perts GENE0006,GENE0035 \
  --config configs/state-tiny-bench.toml --steps 300 --out "$WORK/runs/scale" --threads 2 > "$WORK/scale.log" 2>&1
grep -a "Elapsed\|Maximum resident\|it/s" "$WORK/scale.log" | tail -4
echo "   after: $(cut -d' ' -f1-3 /proc/loadavg)"
