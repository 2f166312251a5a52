#!/usr/bin/env bash
# STC-Cacher reference interval N (paper App. Table 8).
# Rows, columns and published numbers: configs/tables/cache_interval.yaml. Settings: scripts/table_common.sh.
#   REKV_MODEL=/models/llava-onevision-qwen2-7b-ov-hf DATA=/data NGPU=8 bash scripts/table_cache_interval.sh [Hydra overrides...]
# Output: results/tables/cache_interval.md and .csv (runs under results/eval/, results/speed/). Docs: docs/REPRODUCE.md.
source "$(dirname "$0")/table_common.sh"
run_table cache_interval "$@"
