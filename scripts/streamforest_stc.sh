#!/usr/bin/env bash
# Paper row "StreamForest + STC-Cacher" (cacher only, N=4, r=0.25 = 75% reuse, as the paper's generality table)
# on OVO-Bench and StreamingBench; see docs/streamforest/REPRODUCE.md.
#   STREAMFOREST_MODEL=/models/StreamForest-Qwen2-7B DATA=/data NGPU=8 bash scripts/streamforest_stc.sh [overrides...]
# Beyond the paper: add compression.pruner.tokens_per_frame=... with compression=stc (see the README) to prune.
source "$(dirname "$0")/streamforest_common.sh"
streamforest_row stc_cacher compression.cacher.cache_interval=4 compression.cacher.update_ratio=0.25 "$@"
