#!/usr/bin/env bash
# STC-Cacher recompute ratio r (ablation; no published numbers).
# Rows, columns and published numbers: configs/tables/update_ratio.yaml. Settings: scripts/table_common.sh.
#   REKV_MODEL=/models/llava-onevision-qwen2-7b-ov-hf DATA=/data NGPU=8 bash scripts/table_update_ratio.sh [Hydra overrides...]
# Output: results/tables/update_ratio.md and .csv (runs under results/eval/, results/speed/). Docs: docs/REPRODUCE.md.
source "$(dirname "$0")/table_common.sh"
run_table update_ratio "$@"
