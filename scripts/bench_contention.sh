#!/usr/bin/env bash
# Training under CPU contention, STATE and scale side by side: the STATE-tiny config (hidden 128, 2 layers,
# 4 heads x 32, MLP 512, 8 sets x 32 cells, 2,000 genes, energy loss, 1 loader worker), 300 steps each, with a
# second CPU-bound job (`python3 -c 'while 1: pass'`, one full core) running for the whole of both runs.
# Steady it/s: STATE from a 300-step and a 1-step run (see below), scale from its own log line. Results: docs/bench/model.md ("Under contention, side by side").
#
# Needs: the peers venv (`PEERS=/tmp/peers ../shared/peers/setup_peers.sh --locked`) and a release `scale`.
# Usage: scripts/bench_contention.sh          (from the repository root)
# Env:   SCALE (default target/release/scale)  PEERS (default /tmp/peers)  WORK (default /tmp/bench_contention)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib_state.sh
source "$HERE/lib_state.sh"
WORK=${WORK:-/tmp/bench_contention}
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

# STATE's steady rate: a 300-step run and a 1-step run (start-up, data module, one step, final checkpoint)
# under the same busy loop; it/s = 299 / (wall_300 - wall_1). (Its checkpoints are only written at the end,
# and its metrics.csv is flushed in blocks, so neither gives step times.)
state_run() {
  rm -rf "$WORK/runs/state_$1"
  /usr/bin/time -f "%e %M" -o "$WORK/state_$1.time" "$PEERS/venv/bin/state" tx train \
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
    training.batch_size=8 training.max_steps="$1" training.val_freq=1000 training.ckpt_every_n_steps=1000 \
    use_wandb=false output_dir="$WORK/runs" name="state_$1" overwrite=true > "$WORK/state_$1.log" 2>&1
  echo "STATE $1 steps: wall, peak RSS (kB): $(cat "$WORK/state_$1.time")"
}
echo "== STATE, load $(cut -d' ' -f1-3 /proc/loadavg)"
state_run 300
state_run 1
python3 -c "
w300, w1 = (float(open('$WORK/state_%d.time' % n).read().split()[0]) for n in (300, 1))
print(f'STATE steady it/s (299 steps in {w300 - w1:.1f} s): {299 / (w300 - w1):.2f}')"
echo "   after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== scale, load $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$WORK/runs/scale"
/usr/bin/time -v "$SCALE" train --store "$WORK/store" --holdout-perts GENE0006,GENE0035 \
  --config configs/state-tiny-bench.toml --steps 300 --out "$WORK/runs/scale" --threads 2 > "$WORK/scale.log" 2>&1
grep -a "Elapsed\|Maximum resident\|it/s" "$WORK/scale.log" | tail -4
echo "   after: $(cut -d' ' -f1-3 /proc/loadavg)"
