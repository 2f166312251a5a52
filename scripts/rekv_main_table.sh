#!/usr/bin/env bash
# Kept for old instructions: the ReKV main table is now scripts/table_rekv_main.sh (rows, settings and the
# paper's numbers in configs/tables/rekv_main.yaml; table written by python -m evaluation.tables).
#   REKV_MODEL=/models/llava-onevision-qwen2-7b-ov-hf DATA=/data NGPU=8 bash scripts/rekv_main_table.sh [overrides...]
exec bash "$(dirname "$0")/table_rekv_main.sh" "$@"
