#!/usr/bin/env bash
# LiveCC-7B-Instruct on OVO-Bench, row "+ STC-Cacher (N=$N, r=$R on the 32 ViT blocks, 2-frame groups)"; see docs/livecc/REPRODUCE.md.
#   LIVECC_MODEL=/models/LiveCC-7B-Instruct DATA=/data/ovobench bash scripts/livecc_ovobench_stc_cacher.sh [extra arguments...]
source "$(dirname "$0")/livecc_common.sh"
livecc_row stc_cacher "$@"
