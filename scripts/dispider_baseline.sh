#!/usr/bin/env bash
# Paper row "Dispider" (no compression) on OVO-Bench and StreamingBench; see docs/dispider/REPRODUCE.md.
#   DISPIDER_MODEL=/models/Dispider DATA=/data NGPU=8 bash scripts/dispider_baseline.sh [overrides...]
source "$(dirname "$0")/dispider_common.sh"
dispider_row none "$@"
