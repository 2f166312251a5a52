#!/usr/bin/env bash
# Run several GPU jobs in one session on a bare machine, each under its own time limit, and pack every
# output into ONE archive (the lab's device runner returns only a few files).
#   OUT=/tmp/out bash scripts/gpu/run_jobs.sh tests:90 speed:300 dispider:150 ...
# Jobs (name:seconds): tests, speed, kernels, kernels_autotune, streamforest, dispider, livecc, baselines, adaptive, step, splits, e2e, harness, tokens, eval2gpu, e2e_hosts, answer.
# Wheels for hydra/omegaconf/antlr4/decord are installed from .whl/ when present (Python 3.12 machine).
# Time limits: the whole GPU test set (tests) took 88 s on a warm H200 but did not finish in 240 s on a
# freshly started one (Inductor compiles every fused kernel cold); give it ~400 s as the first job.
set -u
OUT=${OUT:-results/gpu-run}
mkdir -p "$OUT/work"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=.:${PYTHONPATH:-} PYTHONUNBUFFERED=1
export W="$OUT/work"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$W/env.txt" 2>&1
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" >> "$W/env.txt" 2>&1

job() {
  case "$1" in
    tests) python3 -m pytest -q -p no:cacheprovider ${TEST_PATHS:-tests/gpu tests/frameworks/test_rekv_cuda.py tests/frameworks/test_rekv_graph_cuda.py} -rs ;;
    speed) eval "GPU=0 bash scripts/speed_gpu_all.sh \"$W/speed\" ${SPEED_ARGS:-}" ;;
    streamforest) python3 scripts/gpu/streamforest_speed.py --out "$W/streamforest" ${SF_ARGS:-} ;;
    dispider) python3 scripts/gpu/dispider_speed.py --out "$W/dispider" ${DS_ARGS:-} ;;
    livecc) python3 scripts/gpu/livecc_speed.py --out "$W/livecc" ${LC_ARGS:-} ;;
    baselines) python3 scripts/gpu/baselines_speed.py --out "$W/baselines" ;;
    adaptive) python3 scripts/gpu/adaptive_refresh_speed.py --out "$W/adaptive" ;;
    step) python3 scripts/gpu/profile_rekv_step.py --out "$W/step" ${STEP_ARGS:-} ;;
    splits) python3 scripts/gpu/split_attention_bench.py --out "$W/splits" ${SPLITS_ARGS:-} ;;
    tokens) python3 scripts/gpu/token_stage_speed.py --out "$W/tokens" ;;
    kernels) python3 scripts/gpu/vit_layer_kernels.py --out "$W/kernels" --modes eager,default ${KERNEL_ARGS:-} ;;
    kernels_autotune) python3 scripts/gpu/vit_layer_kernels.py --out "$W/kernels_autotune" --modes max-autotune ${KERNEL_ARGS:-} ;;
    answer) python3 scripts/gpu/rekv_answer_latency.py --out "$W/answer" ${ANSWER_ARGS:-} ;;
    eval2gpu) bash scripts/gpu/eval_two_gpu.sh "$W/eval2gpu" ;;
    e2e) python3 -m speed_benchmark preset=${E2E_PRESET:-llava_ov_7b} device=cuda progress=false vit.enabled=false \
           multistream.enabled=false prefill.enabled=false out_dir="$W/e2e" ${E2E_ARGS:-} ;;
    harness) python3 -m speed_benchmark device=cuda progress=false out_dir="$W/harness" ${HARNESS_ARGS:-} ;;
    e2e_hosts) for preset in livecc_7b streamforest_7b dispider; do
                 timeout ${E2E_SECONDS:-110} python3 -m speed_benchmark preset=$preset device=cuda progress=false vit.enabled=false \
                   multistream.enabled=false prefill.enabled=false 'e2e.variants=[baseline,stc]' 'e2e.modes=[graph]' \
                   'e2e.frames_per_chunk=[1]' e2e.repeats=2 out_dir="$W/e2e_$preset" || echo "e2e $preset failed rc=$?"
               done ;;
    *) echo "unknown job $1"; return 2 ;;
  esac
}

for spec in "$@"; do
  name=${spec%%:*}; limit=${spec##*:}
  start=$(date +%s)
  timeout "$limit" bash -c "$(declare -f job); job $name" > "$W/$name.log" 2>&1
  rc=$?
  echo "$name rc=$rc seconds=$(( $(date +%s) - start ))" | tee -a "$W/summary.txt"
  tail -5 "$W/$name.log"
done
tar -czf "$OUT/results.tar.gz" -C "$W" .
cp "$W/summary.txt" "$OUT/summary.txt"
