#!/usr/bin/env bash
# STC-Cacher reuse target: attention only / MLP only / both (paper Table 4).
# Rows, columns and published numbers: configs/tables/cacher_reuse.yaml. Settings: scripts/table_common.sh.
#   REKV_MODEL=/models/llava-onevision-qwen2-7b-ov-hf DATA=/data NGPU=8 bash scripts/table_cacher_reuse.sh [Hydra overrides...]
# Output: results/tables/cacher_reuse.md and .csv (runs under results/eval/, results/speed/). Docs: docs/REPRODUCE.md.
source "$(dirname "$0")/table_common.sh"
run_table cacher_reuse "$@"
