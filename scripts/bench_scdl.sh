#!/usr/bin/env bash
# Ingest throughput: `scale ingest` vs BioNeMo SCDL's `convert_h5ad_to_scdl` on the same .h5ad file,
# alternating runs (scale, scdl, scale, scdl, ...), each a fresh process under /usr/bin/time -v.
# Results: docs/bench/store.md, section "BioNeMo SCDL converter".
#
#   python3 -m venv /tmp/scdlvenv && /tmp/scdlvenv/bin/pip install bionemo-scdl      # 0.1.3 when measured
#   scripts/bench_scdl.sh /tmp/bench_100k.h5ad 3 --pert-col target_gene --context-col cell_type
#   scripts/bench_scdl.sh data/papalexi2021/papalexi2021_lowmoi.h5ad 3 --pert-col perturbation --batch-col bio_rep
#   scale synth --out /tmp/synth_200k.h5ad --cells 200000 --genes 2000 --perts 100 --contexts 3 --batches 4 --seed 7
#   scripts/bench_scdl.sh /tmp/synth_200k.h5ad 3 --pert-col target_gene --context-col cell_type --batch-col gem_group
#   SCDL_PAGINATE=8192 scripts/bench_scdl.sh /tmp/synth_200k.h5ad 2 --pert-col target_gene ...   # SCDL block-wise
#
# Arguments: FILE REPS, then the column arguments for `scale ingest` (--control defaults to non-targeting).
# Environment: SCALE (the scale binary; default $CARGO_TARGET_DIR/release/scale or target/release/scale),
# SCDL_VENV (default /tmp/scdlvenv), SCDL_PAGINATE (a row count: run SCDL in its block-wise mode,
# --paginated-load-cutoff 0 --load-block-row-size ROWS, instead of reading the file whole), WORK (scratch
# folder for the outputs, default /tmp/scdlbench; each output is measured with `du -sb`, then deleted).
#
# SCDL reads .X with --use-X-not-raw (its default is .raw.X, which these files lack) and keeps its defaults
# otherwise (float32 data; a file under 10,000 MB is read whole with anndata.read_h5ad, not paginated).
# Then, REPS times, SCDL's conversion timed inside Python after its imports (scdl-convert-only), and once
# the import alone (scdl-import-only).
# One line per run on stdout (TSV): tool run wall_s cpu_s cells_per_s input_MB_per_s peak_rss_MB out_MB
# written_MB load1 (MB = 10^6 bytes; input MB = the .h5ad size; cpu_s = user + system; written_MB = the
# process's file-system output blocks x 512, temporary files included; load1 = 1-minute load average just
# before the run). cells/s and MB/s are from the wall time.
set -euo pipefail

FILE=$(readlink -f "$1"); REPS=$2; shift 2
SCALE=${SCALE:-${CARGO_TARGET_DIR:-target}/release/scale}
SCDL_VENV=${SCDL_VENV:-/tmp/scdlvenv}
WORK=${WORK:-/tmp/scdlbench}
mkdir -p "$WORK"
SCDL_IN="$WORK/in"; rm -rf "$SCDL_IN"; mkdir -p "$SCDL_IN"
ln -s "$FILE" "$SCDL_IN/$(basename "$FILE")"   # the SCDL CLI takes a folder of .h5ad files

CELLS=$("$SCDL_VENV/bin/python" -c "import h5py,sys; print(int(h5py.File(sys.argv[1],'r')['X'].attrs['shape'][0]))" "$FILE")
BYTES=$(stat -c %s "$FILE")
echo "# file=$FILE cells=$CELLS bytes=$BYTES scale=$("$SCALE" --version 2>/dev/null || echo "$SCALE")" \
     "scdl=$("$SCDL_VENV/bin/pip" show bionemo-scdl 2>/dev/null | awk '/^Version/{print $2}')" \
     "anndata=$("$SCDL_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("anndata"))')" >&2
cat "$FILE" > /dev/null    # both tools start from a warm page cache

PAGE_ARGS=""; PAGE_CUTOFF=10000; PAGE_ROWS=1000000   # SCDL's defaults
if [ -n "${SCDL_PAGINATE:-}" ]; then
  PAGE_CUTOFF=0; PAGE_ROWS=$SCDL_PAGINATE
  PAGE_ARGS="--paginated-load-cutoff 0 --load-block-row-size $SCDL_PAGINATE"
fi

secs() { awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }'; }

run_one() {   # tool run
  local tool=$1 i=$2 out="$WORK/out_$1" log="$WORK/time_$1_$2.log" load
  shift 2
  rm -rf "$out"
  load=$(awk '{print $1}' /proc/loadavg)
  if [ "$tool" = scale ]; then
    /usr/bin/time -v "$SCALE" --quiet ingest --input "$FILE" --out "$out" "$@" >"$WORK/stdout_${tool}_$i.log" 2>"$log"
  else
    /usr/bin/time -v "$SCDL_VENV/bin/convert_h5ad_to_scdl" --data-path "$SCDL_IN" --save-path "$out" \
      --use-X-not-raw $PAGE_ARGS >"$WORK/stdout_${tool}_$i.log" 2>"$log"
  fi
  local wall rss outb cpu wr
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{print $2}' "$log" | secs)
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$log")
  cpu=$(awk -F': ' '/(User|System) time/{s += $2} END {print s}' "$log")
  wr=$(awk -F': ' '/File system outputs/{print $2}' "$log")
  outb=$(du -sb "$out" | cut -f1)
  awk -v t="$tool" -v i="$i" -v w="$wall" -v c="$CELLS" -v b="$BYTES" -v r="$rss" -v o="$outb" -v l="$load" \
      -v u="$cpu" -v x="$wr" \
    'BEGIN { printf "%s\t%d\t%.2f\t%.2f\t%.0f\t%.1f\t%.0f\t%.1f\t%.0f\t%s\n", t, i, w, u, c / w, b / 1e6 / w, r / 1024, o / 1e6, x * 512 / 1e6, l }'
  rm -rf "$out"
}

printf "tool\trun\twall_s\tcpu_s\tcells_per_s\tinput_MB_per_s\tpeak_rss_MB\tout_MB\twritten_MB\tload1\n"
for i in $(seq 1 "$REPS"); do
  run_one scale "$i" "$@"
  run_one scdl "$i"
done
# SCDL's conversion alone, timed inside Python after the imports (the same calls as convert_h5ad_to_scdl's
# main(): SingleCellCollection.load_h5ad_multi + flatten); peak RSS is the whole process's.
for i in $(seq 1 "$REPS"); do
  rm -rf "$WORK/out_inproc"
  load=$(awk '{print $1}' /proc/loadavg)
  "$SCDL_VENV/bin/python" - "$SCDL_IN" "$WORK/out_inproc" "$PAGE_CUTOFF" "$PAGE_ROWS" <<'PY' | awk -v i="$i" -v c="$CELLS" -v b="$BYTES" -v l="$load" \
    '{ printf "scdl-convert-only\t%d\t%.2f\t%.2f\t%.0f\t%.1f\t%.0f\t-\t-\t%s\n", i, $1, $3, c / $1, b / 1e6 / $1, $2 / 1024, l }'
import resource, sys, tempfile, time
from bionemo.scdl.io.single_cell_collection import SingleCellCollection
r = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = r.ru_utime + r.ru_stime
t0 = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    coll = SingleCellCollection(tmp)
    coll.load_h5ad_multi(sys.argv[1], max_workers=4, use_processes=False, use_X_not_raw=True,
                         paginated_load_cutoff=int(sys.argv[3]), load_block_row_size=int(sys.argv[4]))
    coll.flatten(sys.argv[2], destroy_on_copy=True)
r = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - t0, r.ru_maxrss, r.ru_utime + r.ru_stime - cpu0)
PY
  rm -rf "$WORK/out_inproc"
done
# The fixed cost inside SCDL's figure: starting Python and importing bionemo.scdl (it imports torch).
load=$(awk '{print $1}' /proc/loadavg)
/usr/bin/time -v "$SCDL_VENV/bin/python" -c "import bionemo.scdl.io.single_cell_collection" 2>"$WORK/time_import.log"
wall=$(awk -F': ' '/Elapsed \(wall clock\)/{print $2}' "$WORK/time_import.log" | secs)
rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$WORK/time_import.log")
cpu=$(awk -F': ' '/(User|System) time/{s += $2} END {print s}' "$WORK/time_import.log")
printf "scdl-import-only\t1\t%s\t%s\t-\t-\t%d\t-\t-\t%s\n" "$wall" "$cpu" $((rss / 1024)) "$load"
