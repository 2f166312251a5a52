#!/usr/bin/env bash
# Shared by scripts/rekv_*.sh: run one row of the paper's ReKV tables (LLaVA-OV-7B + ReKV) over benchmarks.
#   REKV_MODEL  local llava-onevision-qwen2-7b-ov-hf folder (required; never downloaded)
#   DATA        folder with one sub-folder per benchmark: ovobench streamingbench mlvu egoschema videomme
#   NGPU        GPUs (one shard per GPU via torchrun, then merge); default 1
#   BENCHMARKS  subset, default "ovobench streamingbench mlvu egoschema videomme"
#   DTYPE       default float16 (as upstream)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${REKV_MODEL:?set REKV_MODEL to the local llava-onevision-qwen2-7b-ov-hf folder (see docs/rekv/REPRODUCE.md)}"
: "${DATA:?set DATA to the folder holding ovobench/ streamingbench/ mlvu/ egoschema/ videomme/}"
NGPU=${NGPU:-1}
DTYPE=${DTYPE:-float16}
BENCHMARKS=${BENCHMARKS:-"ovobench streamingbench mlvu egoschema videomme"}

# rekv_row COMPRESSION [extra Hydra overrides...]
rekv_row() {
  local compression=$1; shift
  for bench in $BENCHMARKS; do
    echo "== ReKV row compression=$compression benchmark=$bench"
    bash scripts/eval_benchmark.sh "$bench" rekv "$compression" "$DATA/$bench" "$NGPU" \
      framework.model_path="$REKV_MODEL" framework.dtype="$DTYPE" "$@"
  done
}
