#!/usr/bin/env bash
# All ReKV rows of the paper's tables (ReKV, + STC-Pruner, + STC), then one markdown table of the headline
# numbers from results/eval/<benchmark>-rekv-<compression>/metrics.json.
#   REKV_MODEL=/models/llava-onevision-qwen2-7b-ov-hf DATA=/data NGPU=8 bash scripts/rekv_main_table.sh [overrides...]
source "$(dirname "$0")/rekv_common.sh"
for compression in none stc_pruner stc; do
  rekv_row "$compression" "$@"
done
PY=${PY:-python}
"$PY" - "$BENCHMARKS" <<'PYEOF'
import json, sys
from pathlib import Path
benchmarks = sys.argv[1].split()
print("| row | " + " | ".join(benchmarks) + " |")
print("|---|" + "---|" * len(benchmarks))
for compression, row in (("none", "ReKV"), ("stc_pruner", "+ STC-Pruner"), ("stc", "+ STC (Cacher & Pruner)")):
    cells = []
    for bench in benchmarks:
        path = Path(f"results/eval/{bench}-rekv-{compression}/metrics.json")
        if not path.is_file():
            cells.append("missing")
            continue
        headline = json.loads(path.read_text())["headline"]
        cells.append("; ".join(f"{k} {v:.1f}" for k, v in headline.items()))
    print(f"| {row} | " + " | ".join(cells) + " |")
PYEOF
