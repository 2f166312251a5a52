#!/usr/bin/env bash
# Shared by scripts/dispider_*.sh: one row of the paper's Dispider table (STC Table 7.2) over benchmarks.
#   DISPIDER_MODEL  local Mar2Ding/Dispider folder with its stream_compressor/ sub-folder (never downloaded)
#   DATA            folder with one sub-folder per benchmark (ovobench/ streamingbench/)
#   NGPU            GPUs (one shard per GPU via torchrun, then merge); default 1
#   BENCHMARKS      default "ovobench streamingbench"
#   DTYPE           default bfloat16 (the released checkpoint's dtype)
#   PARITY          1 = released sampling per question (clip rule re-applied to 2 fps runner frames, every
#                   clip recomputed per question; slow); 0 (default) = clips of 16 frames at 1 fps, cached
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DISPIDER_MODEL:?set DISPIDER_MODEL to the local Dispider checkpoint folder (see docs/dispider/REPRODUCE.md)}"
: "${DATA:?set DATA to the folder holding ovobench/ streamingbench/}"
NGPU=${NGPU:-1}
DTYPE=${DTYPE:-bfloat16}
BENCHMARKS=${BENCHMARKS:-"ovobench streamingbench"}
PARITY=${PARITY:-0}

# dispider_row COMPRESSION [extra Hydra overrides...]
dispider_row() {
  local compression=$1; shift
  local sampling=(benchmark.fps=1)
  local suffix=""
  if [ "$PARITY" = 1 ]; then
    # 2 fps gives >= 16 * round(d / 16) distinct frames for every prefix of d >= 8 s (see docs/dispider/README.md)
    sampling=(benchmark.fps=2 framework.sampling=released)
    suffix="-parity"
  fi
  for bench in $BENCHMARKS; do
    echo "== Dispider row compression=$compression benchmark=$bench parity=$PARITY"
    RUN_NAME=${RUN_NAME_PREFIX:-}${bench}-dispider-${compression}${suffix} \
    bash scripts/eval_benchmark.sh "$bench" dispider "$compression" "$DATA/$bench" "$NGPU" \
      framework.model_path="$DISPIDER_MODEL" framework.dtype="$DTYPE" "${sampling[@]}" "$@"
  done
}
