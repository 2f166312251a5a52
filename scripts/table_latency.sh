#!/usr/bin/env bash
# ViT encoding and LLM pre-fill latency, 16 frames (paper Table 1 latency columns; speed harness, one GPU).
# Rows, columns and published numbers: configs/tables/latency.yaml. Settings: scripts/table_common.sh.
#   GPU=0 bash scripts/table_latency.sh   (speed harness only; random weights at the released sizes)
# Output: results/tables/latency.md and .csv (runs under results/eval/, results/speed/). Docs: docs/REPRODUCE.md.
source "$(dirname "$0")/table_common.sh"
run_table latency "$@"
