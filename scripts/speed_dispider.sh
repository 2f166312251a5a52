#!/usr/bin/env bash
# Speed harness, preset dispider (baseline vs STC, every case the preset supports):
#   GPU=0 bash scripts/speed_dispider.sh [key=value ...]     e.g. stc.cache_interval=2 frames=32
# Output: results/speed/<date>-dispider/ (override with out_dir=...).
source "$(dirname "$0")/speed_common.sh"
"$PY" -m speed_benchmark preset=dispider out_dir="results/speed/$STAMP-dispider" "$@"
