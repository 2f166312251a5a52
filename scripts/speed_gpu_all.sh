#!/usr/bin/env bash
# Every llava_ov_7b speed case (ViT one stream eager+graph N=2/4, multi-stream S=1..16, pre-fill with
# frames_per_chunk 1/4/8/16 + pruner, ReKV end-to-end c=1/8) in ONE process, ~5-8 min on an H100/H200.
#   GPU=0 bash scripts/speed_gpu_all.sh OUT_DIR [key=value ...]
# Writes OUT_DIR/llava_ov_7b/{results.json,table.md,speed.png,profile/}, OUT_DIR/env.txt and OUT_DIR/log.txt
# (profile/: one torch.profiler pass per ViT variant after the timed repeats; it does not affect them).
# Needs torch+CUDA, transformers, hydra-core, tqdm (matplotlib optional: without it the plot is skipped
# with a note).
set -euo pipefail
OUT="${1:-${OUT:-results/speed/gpu_all}}"
shift || true
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
export CUDA_VISIBLE_DEVICES="${GPU:-${CUDA_VISIBLE_DEVICES:-0}}"
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
PY="${PYTHON:-python}"
{ nvidia-smi || true; "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)"; } > "$OUT/env.txt" 2>&1
"$PY" -m speed_benchmark preset=llava_ov_7b device=cuda out_dir="$OUT/llava_ov_7b" progress=false profile=true "$@" 2>&1 | tee "$OUT/log.txt"
