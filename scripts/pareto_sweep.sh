#!/usr/bin/env bash
# Accuracy-vs-cost sweep: one Hydra multirun over STC's (N, r, k) on one benchmark and host, then
# python -m evaluation.pareto plots accuracy vs latency / tokens kept / ViT FLOP fraction with the
# paper's points overlaid.
#   BENCH=ovobench DATA=/data REKV_MODEL=/models/llava-onevision-qwen2-7b-ov-hf bash scripts/pareto_sweep.sh [overrides...]
#   N=1,2,4 R=0.15,0.25,0.5 K=32,49,64 override the grid; FRAMEWORK=toy runs it on the CPU test host.
# A sweep over methods instead: COMPRESSION=none,stc_pruner,stc SWEEP_KNOBS=0 bash scripts/pareto_sweep.sh
# Output: results/eval/<bench>-<framework>-sweep_N<N>_r<r>_k<k>/ (one run each; re-running resumes) and
#         results/pareto/pareto-<bench>-<x>.png + pareto-<x>.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
BENCH=${BENCH:-ovobench}
FRAMEWORK=${FRAMEWORK:-rekv}
RESULTS=${RESULTS:-results/eval}
OUT=${OUT:-results/pareto}
N=${N:-1,2,4}; R=${R:-0.15,0.25,0.5}; K=${K:-32,49,64}
COMPRESSION=${COMPRESSION:-stc}
: "${DATA:?set DATA to the folder holding one sub-folder per benchmark}"
MODEL_ARGS=()
if [ "$FRAMEWORK" = rekv ]; then
  : "${REKV_MODEL:?set REKV_MODEL to the local llava-onevision-qwen2-7b-ov-hf folder}"
  MODEL_ARGS=(framework.model_path="$REKV_MODEL" framework.dtype="${DTYPE:-float16}")
fi
if [ "${SWEEP_KNOBS:-1}" = 1 ]; then
  GRID=(compression.cacher.cache_interval="$N" compression.cacher.update_ratio="$R" compression.pruner.tokens_per_frame="$K"
        'run_name=${benchmark.name}-${framework.name}-sweep_N${compression.cacher.cache_interval}_r${compression.cacher.update_ratio}_k${compression.pruner.tokens_per_frame}')
else
  GRID=('run_name=${benchmark.name}-${framework.name}-${compression_label:${compression}}')
fi
"$PY" -m evaluation -m benchmark="$BENCH" framework="$FRAMEWORK" compression="$COMPRESSION" data.root="$DATA/$BENCH" \
  "${MODEL_ARGS[@]}" "${GRID[@]}" "output_dir=$RESULTS/\${run_name}" hydra.sweep.dir="$RESULTS/.hydra-sweeps/$BENCH-$FRAMEWORK" "$@"
for x in latency tokens_kept vit_flops; do
  "$PY" -m evaluation.pareto results="$RESULTS" out="$OUT" x="$x"
done
