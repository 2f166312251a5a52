#!/usr/bin/env bash
# Paper row "Dispider + STC-Cacher" (cacher only, N=4, r=0.25 = 75% reuse, CUDA-graph replay) on OVO-Bench
# and StreamingBench; see docs/dispider/REPRODUCE.md. The pruner variant (beyond upstream):
# scripts/dispider_stc_pruner.sh.
#   DISPIDER_MODEL=/models/Dispider DATA=/data NGPU=8 bash scripts/dispider_stc.sh [overrides...]
source "$(dirname "$0")/dispider_common.sh"
dispider_row stc_cacher compression.cacher.cache_interval=4 compression.cacher.update_ratio=0.25 \
  ++compression.cacher.cuda_graph=true "$@"
