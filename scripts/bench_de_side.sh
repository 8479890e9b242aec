#!/usr/bin/env bash
# DE alone: pdex 0.3.0 (first and warm call, `pdex_bench.py`) against scale's DE stage of one file
# (`stage_bench de`: DE after reading, as pdex_bench times pdex() after reading), alternating, twice.
# DIR, PY, PEERS as in bench_eval_side.sh; build first: cargo build --release -p scale-eval --example stage_bench
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${DIR:-/tmp/evalbench}
PY=${PY:-/tmp/peers/venv/bin/python}
PEERS=${PEERS:-$(cd "$ROOT/.." && pwd)/shared/peers}
cd "$DIR"
export OMP_WAIT_POLICY=PASSIVE
for _ in 1 2; do
  echo "pdex $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  "$PY" "$PEERS/pdex_bench.py" real.h5ad --threads 2 2>/dev/null | grep -E '"pdex_s_(first|warm)"'
  echo "scale DE $(date +%T)"
  "$ROOT/target/release/examples/stage_bench" de real.h5ad 3 2
done
