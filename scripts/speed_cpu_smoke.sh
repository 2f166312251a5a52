#!/usr/bin/env bash
# CPU smoke run of the harness on the tiny preset (seconds): bash scripts/speed_cpu_smoke.sh [key=value ...]
source "$(dirname "$0")/speed_common.sh"
"$PY" -m speed_benchmark preset=tiny device=cpu out_dir="results/speed/$STAMP-tiny-cpu" "$@"
