#!/usr/bin/env bash
# Paper row "+ STC-Pruner" (k=64 tokens per frame) on every benchmark; see docs/rekv/REPRODUCE.md.
#   REKV_MODEL=/models/llava-onevision-qwen2-7b-ov-hf DATA=/data NGPU=8 bash scripts/rekv_stc_pruner.sh [overrides...]
source "$(dirname "$0")/rekv_common.sh"
rekv_row stc_pruner "$@"
