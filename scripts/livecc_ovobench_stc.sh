#!/usr/bin/env bash
# LiveCC-7B-Instruct on OVO-Bench, row "+ STC-Cacher + STC-Pruner (k=$K merged tokens per 2-frame group)"; see docs/livecc/REPRODUCE.md.
#   LIVECC_MODEL=/models/LiveCC-7B-Instruct DATA=/data/ovobench bash scripts/livecc_ovobench_stc.sh [extra arguments...]
source "$(dirname "$0")/livecc_common.sh"
livecc_row stc "$@"
