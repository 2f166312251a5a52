#!/usr/bin/env bash
# Kept for old instructions: paper Table 5 (STC-Pruner anchors) is now scripts/table_pruner_anchors.sh
# (rows = dual_anchor score with alpha 0 / 1 / 0.5 at k=49, in configs/tables/pruner_anchors.yaml).
#   REKV_MODEL=/models/llava-onevision-qwen2-7b-ov-hf DATA=/data NGPU=8 bash scripts/rekv_ablation_pruner_anchors.sh
exec bash "$(dirname "$0")/table_pruner_anchors.sh" "$@"
