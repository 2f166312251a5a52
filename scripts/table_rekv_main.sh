#!/usr/bin/env bash
# ReKV + LLaVA-OV-7B: ReKV, +ToMe, +VisionZip, +VidCom², +STC-Pruner, +STC on OVO-Bench, StreamingBench, EgoSchema, MLVU, Video-MME (paper Tables 1-3).
# Rows, columns and published numbers: configs/tables/rekv_main.yaml. Settings: scripts/table_common.sh.
#   REKV_MODEL=/models/llava-onevision-qwen2-7b-ov-hf DATA=/data NGPU=8 bash scripts/table_rekv_main.sh [Hydra overrides...]
# Output: results/tables/rekv_main.md and .csv (runs under results/eval/, results/speed/). Docs: docs/REPRODUCE.md.
source "$(dirname "$0")/table_common.sh"
run_table rekv_main "$@"
