#!/usr/bin/env bash
# LiveCC-7B-Instruct on OVO-Bench, row "Baseline (LiveCC as released, dense ViT, all tokens)"; see docs/livecc/REPRODUCE.md.
#   LIVECC_MODEL=/models/LiveCC-7B-Instruct DATA=/data/ovobench bash scripts/livecc_ovobench_baseline.sh [extra arguments...]
source "$(dirname "$0")/livecc_common.sh"
livecc_row none "$@"
