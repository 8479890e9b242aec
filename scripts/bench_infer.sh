#!/usr/bin/env bash
# Inference at STATE's tiny config on the 2,000-gene synthetic set of scripts/bench_contention.sh (run that
# first: it trains both models for 300 steps): every training perturbation predicted at its real cell count
# (about 17,000 cells) by `scale predict`, and every row of the set simulated by `state tx infer`
# (scripts/state_infer_timed.py adds up STATE's forward passes). Alternating, 3 fresh processes each, 2
# threads. Results: docs/bench/model.md ("Inference at the STATE-tiny config").
# Usage: scripts/bench_infer.sh      Env: SCALE, PEERS (default /tmp/peers), WORK (default /tmp/bench_contention), RUNS (default 3)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib_state.sh
source "$HERE/lib_state.sh"
WORK=${WORK:-/tmp/bench_contention}
mkdir -p "$WORK/infer"
# scale's inputs: the control cells (context label as the run's contract names it) and one request per
# training perturbation with its real cell count.
"$PY" - "$WORK" <<'PY'
import json, sys
import anndata as ad
w = sys.argv[1]
c = json.load(open(f"{w}/runs/scale/contract.json"))
a = ad.read_h5ad(f"{w}/syn.h5ad")
ctrl = a[a.obs["target_gene"] == c["control_pert"]].copy()
ctrl.obs[c["context_col"]] = c["contexts"][0]
ctrl.write_h5ad(f"{w}/infer/controls.h5ad")
counts = a.obs["target_gene"].value_counts()
with open(f"{w}/infer/perts.tsv", "w") as f:
    f.write("perturbation\tcontext\tn_cells\n")
    n = 0
    for p in c["pert_components"]:
        f.write(f"{p}\t{c['contexts'][0]}\t{counts[p]}\n")
        n += counts[p]
print(f"{ctrl.n_obs} controls, {len(c['pert_components'])} perturbations, {n} cells to predict")
PY
for i in $(seq 1 "${RUNS:-3}"); do
  echo "== run $i, load $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -f "scale wall %e s, peak %M kB" "$SCALE" predict --run "$WORK/runs/scale" \
    --controls "$WORK/infer/controls.h5ad" --perts "$WORK/infer/perts.tsv" --out "$WORK/infer/scale.h5ad" \
    --threads 2 2>&1 | grep -a "forward passes\|predicted\|wall"
  /usr/bin/time -f "STATE wall %e s, peak %M kB" "$PY" "$HERE/state_infer_timed.py" --model-dir "$WORK/runs/state" \
    --checkpoint "$WORK/runs/state/checkpoints/final.ckpt" --adata "$WORK/cl/syn.h5ad" --pert-col target_gene \
    --celltype-col cell_type --batch-col gem_group --control-pert non-targeting --seed 0 \
    --output "$WORK/infer/state.h5ad" --quiet | tail -1
done
