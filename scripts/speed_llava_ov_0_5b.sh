#!/usr/bin/env bash
# Speed harness, preset llava_ov_0_5b (baseline vs STC, every case the preset supports):
#   GPU=0 bash scripts/speed_llava_ov_0_5b.sh [key=value ...]     e.g. stc.cache_interval=2 frames=32
# Output: results/speed/<date>-llava_ov_0_5b/ (override with out_dir=...).
source "$(dirname "$0")/speed_common.sh"
"$PY" -m speed_benchmark preset=llava_ov_0_5b out_dir="results/speed/$STAMP-llava_ov_0_5b" "$@"
