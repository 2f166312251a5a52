#!/usr/bin/env bash
# Paper row "StreamForest" (no compression) on OVO-Bench and StreamingBench; see docs/streamforest/REPRODUCE.md.
#   STREAMFOREST_MODEL=/models/StreamForest-Qwen2-7B DATA=/data NGPU=8 bash scripts/streamforest_baseline.sh [overrides...]
source "$(dirname "$0")/streamforest_common.sh"
streamforest_row none "$@"
