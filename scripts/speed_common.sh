# Shared by scripts/speed_*.sh: GPU selection, allocator setting, output folder. Source, do not run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CUDA_VISIBLE_DEVICES="${GPU:-${CUDA_VISIBLE_DEVICES:-0}}"
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
PY="${PYTHON:-python}"
STAMP="$(date +%Y%m%d-%H%M%S)"
