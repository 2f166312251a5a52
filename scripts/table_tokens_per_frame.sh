#!/usr/bin/env bash
# STC-Pruner budget k (ablation; no published numbers).
# Rows, columns and published numbers: configs/tables/tokens_per_frame.yaml. Settings: scripts/table_common.sh.
#   REKV_MODEL=/models/llava-onevision-qwen2-7b-ov-hf DATA=/data NGPU=8 bash scripts/table_tokens_per_frame.sh [Hydra overrides...]
# Output: results/tables/tokens_per_frame.md and .csv (runs under results/eval/, results/speed/). Docs: docs/REPRODUCE.md.
source "$(dirname "$0")/table_common.sh"
run_table tokens_per_frame "$@"
