#!/usr/bin/env bash
# Speed harness, preset livecc_7b (baseline vs STC, every case the preset supports):
#   GPU=0 bash scripts/speed_livecc.sh [key=value ...]     e.g. stc.cache_interval=2 frames=32
# Output: results/speed/<date>-livecc_7b/ (override with out_dir=...).
source "$(dirname "$0")/speed_common.sh"
"$PY" -m speed_benchmark preset=livecc_7b out_dir="results/speed/$STAMP-livecc_7b" "$@"
