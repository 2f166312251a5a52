#!/usr/bin/env bash
# Every speed case of llava_ov_7b in ONE process (estimated 6-8 min on an H200; device-checked only once
# the lead has run it):
#   (1) ViT one stream: baseline eager/graph, STC N=2/4 in eager, graph, eager+fused, graph+fused
#       (what the removed tests/gpu/cacher_latency.py measured), + one torch.profiler pass per variant (profile/)
#   (2) multi-stream ViT S=1..16   (3) LLM pre-fill c=1/4/8/16 + pruner
#   (4) ReKV end to end (what the removed frameworks/rekv/gpu_bench.py measured): baseline, pruner-only, STC N=2/4 in
#       eager, graph, graph+fused; 1 and 8 frames per call; a timed 16-token answer after every pass; each
#       in host mode "eager" (LLM step and token stage as HF code runs them) and "graph" (the defaults)
#   (5) answer latency with 1800 frames in memory (1 h at 0.5 fps): baseline and STC
#
#   GPU=0 bash scripts/speed_gpu_all.sh OUT_DIR [key=value ...]        e.g. stc.fused=true
#   AUTOTUNE=1 GPU=0 bash scripts/speed_gpu_all.sh OUT_DIR             + a ViT-only run with Inductor
#                                                                       max_autotune (compiles for minutes)
# Writes OUT_DIR/llava_ov_7b/{results.json,table.md,speed.png,profile/} (+ OUT_DIR/llava_ov_7b_autotune/),
# OUT_DIR/env.txt and OUT_DIR/log.txt. Needs torch+CUDA, transformers, hydra-core, omegaconf, tqdm
# (matplotlib optional: without it the plot is skipped with a note). Publish: python -m speed_benchmark.publish
set -euo pipefail
OUT="${1:-${OUT:-results/speed/gpu_all}}"
shift || true
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
export CUDA_VISIBLE_DEVICES="${GPU:-${CUDA_VISIBLE_DEVICES:-0}}"
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
PY="${PYTHON:-python}"
"$PY" -c "import hydra, omegaconf" 2>/dev/null || { echo "speed_gpu_all: install hydra-core and omegaconf first (docs/speed/README.md)" >&2; exit 2; }
{ nvidia-smi || true; "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)"; } > "$OUT/env.txt" 2>&1
"$PY" -m speed_benchmark preset=llava_ov_7b device=cuda out_dir="$OUT/llava_ov_7b" progress=false profile=true \
    'vit.modes=[eager,graph,eager+fused,graph+fused]' \
    'e2e.modes=[eager,graph,graph+fused]' 'e2e.intervals=[2,4]' e2e.repeats=5 e2e.long_frames=1800 \
    '+e2e.host_modes={eager:{llm_step:eager,graph_token_stage:false},graph:{}}' \
    "$@" 2>&1 | tee "$OUT/log.txt"
if [[ "${AUTOTUNE:-0}" == "1" ]]; then
    "$PY" -m speed_benchmark preset=llava_ov_7b device=cuda out_dir="$OUT/llava_ov_7b_autotune" progress=false \
        stc.autotune=true 'vit.modes=[eager+fused,graph+fused]' multistream.enabled=false prefill.enabled=false \
        e2e.enabled=false "$@" 2>&1 | tee -a "$OUT/log.txt"
fi
