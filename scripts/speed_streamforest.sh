#!/usr/bin/env bash
# Speed harness, preset streamforest_7b (baseline vs STC, every case the preset supports):
#   GPU=0 bash scripts/speed_streamforest.sh [key=value ...]     e.g. stc.cache_interval=2 frames=32
# Output: results/speed/<date>-streamforest_7b/ (override with out_dir=...).
source "$(dirname "$0")/speed_common.sh"
"$PY" -m speed_benchmark preset=streamforest_7b out_dir="results/speed/$STAMP-streamforest_7b" "$@"
