#!/usr/bin/env bash
# Shared by scripts/table_*.sh: run every missing run of one paper table, then write the table.
#   DATA        folder with one sub-folder per benchmark (ovobench streamingbench mlvu egoschema videomme)
#   NGPU        GPUs per evaluation run (torchrun shards + merge); default 1
#   REKV_MODEL / STREAMFOREST_MODEL / DISPIDER_MODEL / LIVECC_MODEL   local checkpoint folders (never downloaded)
#   RESULTS     evaluation runs (default results/eval); SPEED: speed runs (default results/speed)
#   OUT         where <table>.md / <table>.csv land (default results/tables)
#   SPEED_RUNS  1 (default) also runs the speed harness for latency columns; 0 = accuracy only
#   PY          python interpreter (default python)
#   PARITY      1 (default): released behaviour where this port differs (ReKV sink positions, released
#               pruner history); 0 = our defaults. docs/evaluation.md "Parity switches".
#   FRAMEWORK   put every row on this host instead of the spec's (FRAMEWORK=toy: a CPU dry run of the table)
# Finished runs (metrics.json present) are skipped; an interrupted one resumes from its predictions.jsonl.
# Rows whose host or compression method is not in this checkout are reported and left as "–" in the table.
# Extra arguments are Hydra overrides appended to every evaluation run (e.g. limit=50 for a quick check).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-python}
NGPU=${NGPU:-1}
RESULTS=${RESULTS:-results/eval}
SPEED=${SPEED:-results/speed}
OUT=${OUT:-results/tables}
SPEED_RUNS=${SPEED_RUNS:-1}
export DATA=${DATA:-data} NGPU RESULTS PY

# run_table NAME [extra Hydra overrides for every evaluation run...]
run_table() {
  local table=$1; shift
  local plan
  local host=()
  if [ -n "${FRAMEWORK:-}" ]; then host=(framework="$FRAMEWORK"); fi
  plan=$("$PY" -m evaluation.tables table="$table" action=plan results="$RESULTS" speed="$SPEED" parity="${PARITY:-1}" "${host[@]}")
  python() { "$PY" "$@"; }  # the plan's commands say `python`
  local extra=""
  for arg in "$@"; do extra+=" $(printf '%q' "$arg")"; done
  while IFS= read -r line; do
    case "$line" in
      *"bash scripts/eval_benchmark.sh"*) eval "$line$extra" ;;
      *"-m speed_benchmark"*) if [ "$SPEED_RUNS" = 1 ]; then eval "$line"; else echo "speed run skipped (SPEED_RUNS=0)"; fi ;;
      *) eval "$line" ;;
    esac
  done <<< "$plan"
  "$PY" -m evaluation.tables table="$table" results="$RESULTS" speed="$SPEED" out="$OUT" parity="${PARITY:-1}" "${host[@]}"
}
