#!/usr/bin/env bash
# Paper row "+ STC (Cacher & Pruner)": Cacher N=2, r=0.25 + Pruner k=64; see docs/rekv/REPRODUCE.md.
#   REKV_MODEL=/models/llava-onevision-qwen2-7b-ov-hf DATA=/data NGPU=8 bash scripts/rekv_stc.sh [overrides...]
source "$(dirname "$0")/rekv_common.sh"
rekv_row stc "$@"
