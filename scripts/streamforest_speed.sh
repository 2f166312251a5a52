#!/usr/bin/env bash
# StreamForest latency on one GPU (released sizes, random weights; < 4 min on an H200):
#   GPU=0 bash scripts/streamforest_speed.sh [--cache-interval 4 --update-ratio 0.25 ...]
# Output: results/speed/<date>-streamforest/streamforest_speed.{json,md}. See docs/streamforest/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
OUT=${OUT:-results/speed/$(date +%Y%m%d-%H%M%S)-streamforest}
CUDA_VISIBLE_DEVICES=${GPU:-0} "$PY" scripts/gpu/streamforest_speed.py --out "$OUT" "$@"
