#!/usr/bin/env bash
# Side by side: `scale eval` and cell-eval 0.8.2, full profile, 2 threads, on the 18,000-gene benchmark
# (docs/bench/eval.md). Runs scale twice around each of RUNS cell-eval runs, fresh output directories,
# `sync; sleep 2` before each. Run it with the machine otherwise idle.
#   DIR: holds real.h5ad / pred.h5ad, made by
#        python ../shared/peers/make_synth.py --genes 18000 --perts 100 --cells 100 --ctrl-cells 1000 \
#            --out-real DIR/real.h5ad --out-pred DIR/pred.h5ad
#   PY:  a python with cell-eval 0.8.2 (`bash ../shared/peers/setup_peers.sh --locked` -> /tmp/peers/venv)
#   SCALE: the scale binary (cargo build --release)
set -euo pipefail
DIR=${DIR:-/tmp/evalbench}
PY=${PY:-/tmp/peers/venv/bin/python}
SCALE=${SCALE:-$(cd "$(dirname "$0")/.." && pwd)/target/release/scale}
PEERS=${PEERS:-$(cd "$(dirname "$0")/../.." && pwd)/shared/peers}
RUNS=${RUNS:-3}
cd "$DIR"
run_scale() {
  rm -rf s_out; sync; sleep 2
  echo "scale $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -f "scale %e s wall %U+%S cpu %M kB" "$SCALE" --quiet eval --real real.h5ad --pred pred.h5ad \
    --profile full --threads 2 --out s_out 2>&1 | tail -1
}
run_peer() {
  rm -rf peer_out; sync; sleep 2
  echo "cell-eval $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  OMP_WAIT_POLICY=PASSIVE /usr/bin/time -f "cell-eval %e s wall %U+%S cpu %M kB" "$PY" "$PEERS/celleval_timed.py" run \
    -ap pred.h5ad -ar real.h5ad --num-threads 2 --profile full -o peer_out > peer_out.log 2>&1
  tail -1 peer_out.log
}
run_scale; run_scale
for _ in $(seq "$RUNS"); do run_peer; run_scale; run_scale; done
