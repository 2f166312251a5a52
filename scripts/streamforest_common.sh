#!/usr/bin/env bash
# Shared by scripts/streamforest_*.sh: one row of the paper's StreamForest results (STC-Cacher generality
# table: OVO-Bench and StreamingBench); see docs/streamforest/REPRODUCE.md.
#   STREAMFOREST_MODEL  local MCG-NJU/StreamForest-Qwen2-7B folder (required; never downloaded)
#   DATA                folder with ovobench/ and streamingbench/ sub-folders
#   NGPU                GPUs (one shard per GPU via torchrun, then merge); default 1
#   BENCHMARKS          subset, default "ovobench streamingbench"
#   PROTOCOL            reread (released: re-encode 0..t per question; default) | incremental (memory kept per video)
#   DTYPE               default bfloat16
set -euo pipefail
cd "$(dirname "$0")/.."
: "${STREAMFOREST_MODEL:?set STREAMFOREST_MODEL to the local StreamForest-Qwen2-7B folder (see docs/streamforest/REPRODUCE.md)}"
: "${DATA:?set DATA to the folder holding ovobench/ and streamingbench/}"
NGPU=${NGPU:-1}
DTYPE=${DTYPE:-bfloat16}
PROTOCOL=${PROTOCOL:-reread}
BENCHMARKS=${BENCHMARKS:-"ovobench streamingbench"}
# reread: the runner thins each question's 0..t window to 2048 frames before ingest (released max_frames_num),
# so the host never holds more than 2048 frames; incremental keeps every frame in the (bounded) memory instead
if [ "$PROTOCOL" = reread ]; then MAX_FRAMES=2048; else MAX_FRAMES=0; fi

# streamforest_row COMPRESSION [extra Hydra overrides...]
streamforest_row() {
  local compression=$1; shift
  for bench in $BENCHMARKS; do
    echo "== StreamForest row compression=$compression benchmark=$bench protocol=$PROTOCOL"
    RUN_NAME="${bench}-streamforest-${compression}-${PROTOCOL}" \
    bash scripts/eval_benchmark.sh "$bench" streamforest "$compression" "$DATA/$bench" "$NGPU" \
      framework.model_path="$STREAMFOREST_MODEL" framework.dtype="$DTYPE" framework.protocol="$PROTOCOL" \
      benchmark.fps=1 benchmark.max_frames="$MAX_FRAMES" "$@"
  done
}
