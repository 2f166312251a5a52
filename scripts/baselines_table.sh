#!/usr/bin/env bash
# The paper's baseline rows on ReKV + LLaVA-OV-7B at the matched budget (49 of 196 tokens per frame), plus
# the extra baselines (released VidCom², DyCoke, StreamDyCoke, random-drop control) and STC-Pruner at the
# same budget, then one markdown table of the headline numbers (docs/baselines/README.md).
#   REKV_MODEL=/models/llava-onevision-qwen2-7b-ov-hf DATA=/data NGPU=8 bash scripts/baselines_table.sh [overrides...]
#   BUDGET=64 ...   runs every budgeted row at 64/196 instead (result folders get a _64 suffix)
source "$(dirname "$0")/rekv_common.sh"
BUDGET=${BUDGET:-49}
SUFFIX=$([ "$BUDGET" = 49 ] && echo "" || echo "_$BUDGET")

# row <compression group> <label> [overrides...]: results/eval/<benchmark>-rekv-<label> (resumes if present)
row() {
  local group=$1 label=$2; shift 2
  for bench in $BENCHMARKS; do
    echo "== baseline row compression=$group ($label) benchmark=$bench"
    RUN_NAME="$bench-rekv-$label" bash scripts/eval_benchmark.sh "$bench" rekv "$group" "$DATA/$bench" "$NGPU" \
      framework.model_path="$REKV_MODEL" framework.dtype="$DTYPE" compression.name="$label" "$@"
  done
}
row none              none "$@"
row tome              "tome$SUFFIX"              compression.tome.tokens_per_frame="$BUDGET" "$@"
row visionzip         "visionzip$SUFFIX"         compression.visionzip.tokens_per_frame="$BUDGET" "$@"
# the paper's "VidCom²" number comes from STC's two-score port (stc-method.md §7.4)
row vidcom2_two_score "vidcom2_two_score$SUFFIX" compression.vidcom2.tokens_per_frame="$BUDGET" "$@"
# released VidCom²: frame-adaptive budgets need several frames per pre-fill call (STC's port used 16)
row vidcom2           "vidcom2$SUFFIX"           compression.vidcom2.tokens_per_frame="$BUDGET" framework.frames_per_chunk=16 "$@"
row stc_pruner        "stc_pruner_$BUDGET"       compression.pruner.tokens_per_frame="$BUDGET" "$@"
row random_drop       "random_drop$SUFFIX"       compression.random_drop.tokens_per_frame="$BUDGET" "$@"
if [ -z "$SUFFIX" ]; then  # no per-frame budget: run once
  row dycoke          dycoke "$@"
  row dycoke_released dycoke_released "$@"
  row streamdycoke    streamdycoke "$@"
fi

PY=${PY:-python}
"$PY" - "$BENCHMARKS" "$SUFFIX" "$BUDGET" <<'PYEOF'
import json, sys
from pathlib import Path
benchmarks, suffix, budget = sys.argv[1].split(), sys.argv[2], sys.argv[3]
rows = [("none", "ReKV (196/frame)"), (f"tome{suffix}", f"+ ToMe ({budget}/196)"),
        (f"visionzip{suffix}", f"+ VisionZip ({budget}/196)"),
        (f"vidcom2_two_score{suffix}", f"+ VidCom² two-score, paper row ({budget}/196)"),
        (f"vidcom2{suffix}", f"+ VidCom² released, 16-frame chunks ({budget}/196)"),
        (f"stc_pruner_{budget}", f"+ STC-Pruner ({budget}/196)"), (f"random_drop{suffix}", f"+ random drop ({budget}/196)")]
if not suffix:
    rows += [("dycoke", "+ DyCoke (TTM K=0.7 + DP)"), ("dycoke_released", "+ DyCoke as released (DP never runs)"),
             ("streamdycoke", "+ StreamDyCoke (bounded 2048)")]
print("| row | " + " | ".join(benchmarks) + " |")
print("|---|" + "---|" * len(benchmarks))
for label, name in rows:
    cells = []
    for bench in benchmarks:
        path = Path(f"results/eval/{bench}-rekv-{label}/metrics.json")
        if not path.is_file():
            cells.append("missing")
            continue
        headline = json.loads(path.read_text())["headline"]
        cells.append("; ".join(f"{k} {v:.1f}" for k, v in headline.items()))
    print(f"| {name} | " + " | ".join(cells) + " |")
PYEOF
