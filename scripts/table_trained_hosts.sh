#!/usr/bin/env bash
# StreamForest, Dispider, LiveCC with and without STC-Cacher (paper §4 generality table).
# Rows, columns and published numbers: configs/tables/trained_hosts.yaml. Settings: scripts/table_common.sh.
#   STREAMFOREST_MODEL=... DISPIDER_MODEL=... LIVECC_MODEL=... DATA=/data NGPU=8 bash scripts/table_trained_hosts.sh [Hydra overrides...]
# Output: results/tables/trained_hosts.md and .csv (runs under results/eval/, results/speed/). Docs: docs/REPRODUCE.md.
source "$(dirname "$0")/table_common.sh"
run_table trained_hosts "$@"
