#!/usr/bin/env bash
# Paper row "ReKV" (LLaVA-OV-7B, no compression) on every benchmark; see docs/rekv/REPRODUCE.md.
#   REKV_MODEL=/models/llava-onevision-qwen2-7b-ov-hf DATA=/data NGPU=8 bash scripts/rekv_baseline.sh [overrides...]
source "$(dirname "$0")/rekv_common.sh"
rekv_row none "$@"
