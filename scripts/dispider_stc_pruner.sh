#!/usr/bin/env bash
# Beyond the paper: Dispider + STC-Cacher (N=4, r=0.25) + STC-Pruner keeping k of the 64 tokens per frame
# before the compressor (default k=32; pooled slots still come from all 64). docs/dispider/REPRODUCE.md.
#   DISPIDER_MODEL=/models/Dispider DATA=/data K=32 bash scripts/dispider_stc_pruner.sh [overrides...]
source "$(dirname "$0")/dispider_common.sh"
dispider_row stc compression.cacher.cache_interval=4 compression.cacher.update_ratio=0.25 \
  ++compression.cacher.cuda_graph=true compression.pruner.tokens_per_frame="${K:-32}" "$@"
