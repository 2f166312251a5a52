#!/usr/bin/env bash
# Sharded evaluation on 2 GPUs vs a single-GPU run of the same items (issue 9 §5-6). Self-contained:
# synthesizes videos + a StreamingBench-schema annotation of a few hundred items in a temp folder, runs
#   (1) torchrun --nproc_per_node=2 python -m evaluation ... (one shard per GPU), then evaluation.merge,
#   (2) the same items in one process on one GPU,
# compares predictions and reports item by item (evaluation.compare), and writes a markdown summary with
# wall times and host idle time waiting for frames (decode not hidden by the background decoder).
#
#   bash scripts/gpu/eval_two_gpu.sh [OUT_DIR] [extra Hydra overrides...]        # OUT_DIR default: $OUT or results/eval/two_gpu
# Knobs (env): PRESET=7b (released size, random weights) DTYPE=bfloat16 DEVICE=auto NPROC=2
#              VIDEOS=6 SECONDS_PER_VIDEO=60 QUESTIONS=50 (6 x 50 = 300 items) PY=python KEEP=0 (1 keeps the temp folder)
# CPU check (what the tests run): PRESET=tiny DEVICE=cpu DTYPE=float32 VIDEOS=3 SECONDS_PER_VIDEO=8 QUESTIONS=4
# Needs: torch, transformers, decord, hydra-core/omegaconf, and one of PyAV / opencv-python-headless / ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT_DIR=${1:-${OUT:-results/eval/two_gpu}}
shift $(( $# >= 1 ? 1 : 0 ))
PY=${PY:-python}
PRESET=${PRESET:-7b}; DTYPE=${DTYPE:-bfloat16}; DEVICE=${DEVICE:-auto}; NPROC=${NPROC:-2}
VIDEOS=${VIDEOS:-6}; SECONDS_PER_VIDEO=${SECONDS_PER_VIDEO:-60}; QUESTIONS=${QUESTIONS:-50}
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/eval-two-gpu.XXXXXX")
if [ "${KEEP:-0}" != 1 ]; then trap 'rm -rf "$WORK"' EXIT; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

t0=$(date +%s)
"$PY" -m evaluation.synthetic --root "$WORK/data" --videos "$VIDEOS" --seconds "$SECONDS_PER_VIDEO" --questions "$QUESTIONS" \
  | tee "$WORK/synthetic.json"
t1=$(date +%s)
COMMON=(framework=rekv framework.random_weights=true framework.preset="$PRESET" framework.dtype="$DTYPE"
        framework.device="$DEVICE" benchmark=streamingbench data.root="$WORK/data" benchmark.annotation=questions.json
        progress=false "$@")

echo "== (1) $NPROC processes, one shard each"
"$PY" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" -m evaluation "${COMMON[@]}" output_dir="$WORK/sharded" \
  2>&1 | tee "$WORK/sharded.log" | grep -v "^$" | tail -n 20
"$PY" -m evaluation.merge "$WORK/sharded" > "$WORK/merge.log"
t2=$(date +%s)

echo "== (2) one process, one GPU"
CUDA_VISIBLE_DEVICES=${SINGLE_GPU:-${CUDA_VISIBLE_DEVICES:-0}} "$PY" -m evaluation "${COMMON[@]}" output_dir="$WORK/single" \
  > "$WORK/single.log" 2>&1 || { tail -n 30 "$WORK/single.log"; exit 1; }
t3=$(date +%s)

set +e
"$PY" -m evaluation.compare "$WORK/sharded" "$WORK/single" --out "$WORK/compare.md" > /dev/null
same=$?
set -e
cp "$WORK/sharded/report.md" "$OUT_DIR/report_sharded.md"; cp "$WORK/single/report.md" "$OUT_DIR/report_single.md"
cp "$WORK/sharded/metrics.json" "$OUT_DIR/metrics_sharded.json"; cp "$WORK/single/metrics.json" "$OUT_DIR/metrics_single.json"
"$PY" - "$WORK" "$OUT_DIR" "$((t1 - t0))" "$((t2 - t1))" "$((t3 - t2))" "$NPROC" "$PRESET" "$DEVICE" <<'PYEOF'
import json, platform, subprocess, sys
from pathlib import Path
work, out, synth_s, sharded_s, single_s, nproc, preset, device = sys.argv[1:]
m = {k: json.loads((Path(work) / k / "metrics.json").read_text()) for k in ("sharded", "single")}
try:
    gpus = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip().splitlines()
except OSError:
    gpus = []
lines = ["# Two-GPU sharded evaluation vs one GPU (scripts/gpu/eval_two_gpu.sh)", "",
         f"- machine: {platform.node()}, GPUs: {', '.join(gpus) or 'none (CPU run)'}; host ReKV preset `{preset}`, random weights, device `{device}`",
         f"- items: {m['single']['counts']['n']} (synthetic StreamingBench-schema annotation; {json.loads((Path(work) / 'synthetic.json').read_text())['writers']} videos)",
         "", "| run | wall s (incl. model build) | host idle waiting for frames, s | frames ingested | items |", "|---|---|---|---|---|",
         f"| {nproc} processes + merge | {sharded_s} | {m['sharded']['cost']['decode_wait_ms'] / 1000:.1f} (summed over processes) | {m['sharded']['cost']['frames_ingested']} | {m['sharded']['counts']['n']} |",
         f"| 1 process | {single_s} | {m['single']['cost']['decode_wait_ms'] / 1000:.1f} | {m['single']['cost']['frames_ingested']} | {m['single']['counts']['n']} |",
         f"| (video synthesis) | {synth_s} | | | |", ""]
lines.append((Path(work) / "compare.md").read_text())
(Path(out) / "two_gpu.md").write_text("\n".join(lines))
print("\n".join(lines))
PYEOF
echo "wrote $OUT_DIR/two_gpu.md (predictions identical: $([ $same = 0 ] && echo yes || echo NO))"
exit $same
