#!/usr/bin/env bash
# STC-Pruner anchors: SCA / TCA / both (paper Table 5).
# Rows, columns and published numbers: configs/tables/pruner_anchors.yaml. Settings: scripts/table_common.sh.
#   REKV_MODEL=/models/llava-onevision-qwen2-7b-ov-hf DATA=/data NGPU=8 bash scripts/table_pruner_anchors.sh [Hydra overrides...]
# Output: results/tables/pruner_anchors.md and .csv (runs under results/eval/, results/speed/). Docs: docs/REPRODUCE.md.
source "$(dirname "$0")/table_common.sh"
run_table pruner_anchors "$@"
