#!/usr/bin/env bash
# Evaluate one benchmark with one host, optionally on several GPUs (one shard per rank), then merge.
#
#   scripts/eval_benchmark.sh BENCHMARK FRAMEWORK COMPRESSION DATA_ROOT [NGPU] [extra Hydra overrides...]
#
# Examples:
#   scripts/eval_benchmark.sh ovobench toy none /data/ovo                     # CPU smoke run
#   scripts/eval_benchmark.sh ovobench rekv stc /data/ovo 8 framework.model_path=/models/llava-ov-7b
#   scripts/eval_benchmark.sh mlvu rekv none /data/mlvu 4 limit=200
# Outputs: results/eval/<benchmark>-<framework>-<compression>/{predictions.jsonl,metrics.json,report.md,accuracy.png}
# (RUN_NAME=... overrides the folder name, RESULTS=... the parent folder). Re-running the same command resumes.
set -euo pipefail
if [ $# -lt 4 ]; then sed -n 2,13p "$0"; exit 2; fi
BENCH=$1; FRAMEWORK=$2; COMPRESSION=$3; DATA_ROOT=$4; NGPU=${5:-1}
shift $(( $# >= 5 ? 5 : 4 ))
PY=${PY:-python}
RUN_NAME=${RUN_NAME:-${BENCH}-${FRAMEWORK}-${COMPRESSION}}
RESULTS=${RESULTS:-results/eval}
ARGS=(benchmark="$BENCH" framework="$FRAMEWORK" compression="$COMPRESSION" data.root="$DATA_ROOT" run_name="$RUN_NAME"
      output_dir="$RESULTS/$RUN_NAME" "$@")

if [ "$NGPU" -gt 1 ]; then
  # torchrun sets RANK/WORLD_SIZE/LOCAL_RANK: each rank evaluates shard RANK/WORLD_SIZE on cuda:LOCAL_RANK
  "$PY" -m torch.distributed.run --standalone --nproc_per_node="$NGPU" -m evaluation "${ARGS[@]}"
  "$PY" -m evaluation.merge "$RESULTS/$RUN_NAME"
else
  "$PY" -m evaluation "${ARGS[@]}"
fi
