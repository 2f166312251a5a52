#!/usr/bin/env bash
# Shared by scripts/rekv_*.sh: run one row of the paper's ReKV tables (LLaVA-OV-7B + ReKV) over benchmarks.
#   REKV_MODEL  local llava-onevision-qwen2-7b-ov-hf folder (required; never downloaded)
#   DATA        folder with one sub-folder per benchmark: ovobench streamingbench mlvu egoschema videomme
#   NGPU        GPUs (one shard per GPU via torchrun, then merge); default 1
#   BENCHMARKS  subset, default "ovobench streamingbench mlvu egoschema videomme"
#   DTYPE       default float16 (as upstream)
#   PARITY      1 (default): the released behaviour wherever this port deliberately differs
#               (framework.sink_positions=released; pruner strategy gaussian_released via PRUNER_PARITY);
#               0: this port's fixed defaults. See docs/evaluation.md "Parity switches".
set -euo pipefail
cd "$(dirname "$0")/.."
: "${REKV_MODEL:?set REKV_MODEL to the local llava-onevision-qwen2-7b-ov-hf folder (see docs/rekv/REPRODUCE.md)}"
: "${DATA:?set DATA to the folder holding ovobench/ streamingbench/ mlvu/ egoschema/ videomme/}"
NGPU=${NGPU:-1}
DTYPE=${DTYPE:-float16}
BENCHMARKS=${BENCHMARKS:-"ovobench streamingbench mlvu egoschema videomme"}
PARITY=${PARITY:-1}
FRAMEWORK_PARITY=()
PRUNER_PARITY=()   # for rows whose compression has a pruner
if [ "$PARITY" = 1 ]; then
  FRAMEWORK_PARITY=(framework.sink_positions=released)
  PRUNER_PARITY=(compression.pruner.strategy=gaussian_released)
fi

# rekv_row COMPRESSION [extra Hydra overrides...]
rekv_row() {
  local compression=$1; shift
  for bench in $BENCHMARKS; do
    echo "== ReKV row compression=$compression benchmark=$bench"
    local parity=("${FRAMEWORK_PARITY[@]}")
    case "$compression" in stc|stc_pruner) parity+=("${PRUNER_PARITY[@]}") ;; esac
    bash scripts/eval_benchmark.sh "$bench" rekv "$compression" "$DATA/$bench" "$NGPU" \
      framework.model_path="$REKV_MODEL" framework.dtype="$DTYPE" "${parity[@]}" "$@"
  done
}
