#!/usr/bin/env bash
# Shared by scripts/livecc_*.sh: one row of LiveCC-7B-Instruct on OVO-Bench (see docs/livecc/REPRODUCE.md).
#   LIVECC_MODEL  local chenjoya/LiveCC-7B-Instruct folder (required; never downloaded)
#   DATA          OVO-Bench folder: ovo_bench_new.json + src_videos/
#   PROTOCOL      livecc (default: LiveCC's own items/prompts/scoring, scripts/livecc_ovobench_native.py)
#                 | project (python -m evaluation benchmark=ovobench: the official OVO prompts, as every host)
#   NGPU          project protocol only: GPUs (one shard per GPU via torchrun, then merge); default 1
#   N, R, K       STC-Cacher cache_interval (default 4), update_ratio (0.25), STC-Pruner tokens per 2-frame group (96)
#   DTYPE         default bfloat16
set -euo pipefail
cd "$(dirname "$0")/.."
: "${LIVECC_MODEL:?set LIVECC_MODEL to the local LiveCC-7B-Instruct folder (see docs/livecc/REPRODUCE.md)}"
: "${DATA:?set DATA to the OVO-Bench folder (ovo_bench_new.json, src_videos/)}"
PROTOCOL=${PROTOCOL:-livecc}
NGPU=${NGPU:-1}
N=${N:-4}; R=${R:-0.25}; K=${K:-96}
DTYPE=${DTYPE:-bfloat16}
PY=${PY:-python}

# livecc_row COMPRESSION (none | stc_cacher | stc) [extra arguments...]
livecc_row() {
  local compression=$1; shift
  local knobs=() overrides=()
  case "$compression" in
    none) ;;
    stc_cacher) knobs=(--cache-interval "$N" --update-ratio "$R")
                overrides=(compression.cacher.cache_interval="$N" compression.cacher.update_ratio="$R") ;;
    stc) knobs=(--cache-interval "$N" --update-ratio "$R" --tokens-per-frame "$K")
         overrides=(compression.cacher.cache_interval="$N" compression.cacher.update_ratio="$R"
                    compression.pruner.tokens_per_frame="$K") ;;
    *) echo "unknown row $compression" >&2; exit 2 ;;
  esac
  echo "== LiveCC OVO-Bench row compression=$compression protocol=$PROTOCOL"
  if [ "$PROTOCOL" = livecc ]; then
    "$PY" scripts/livecc_ovobench_native.py --annotation "$DATA/ovo_bench_new.json" --video-dir "$DATA/src_videos" \
      --out "results/eval/ovobench-livecc-native-$compression" --model-path "$LIVECC_MODEL" --dtype "$DTYPE" \
      --compression "$compression" "${knobs[@]}" "$@"
  else
    RUN_NAME="ovobench-livecc-$compression" bash scripts/eval_benchmark.sh ovobench livecc "$compression" "$DATA" "$NGPU" \
      framework.model_path="$LIVECC_MODEL" framework.dtype="$DTYPE" benchmark.fps=2 benchmark.max_frames=480 \
      "${overrides[@]}" "$@"
  fi
}
