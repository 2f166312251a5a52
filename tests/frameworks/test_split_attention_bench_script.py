"""scripts/gpu/split_attention_bench.py's CPU path (reference kernel, tiny window): every (tokens, used, P)
row timed, the pick marked, the files written. Its GPU rows are in docs/rekv/graphed-step.md."""

import importlib.util
import json
from pathlib import Path


def test_split_attention_bench_cpu_smoke(tmp_path):
    path = Path(__file__).resolve().parents[2] / "scripts" / "gpu" / "split_attention_bench.py"
    spec = importlib.util.spec_from_file_location("split_attention_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path), "--device", "cpu", "--dtype", "float32", "--capacity", "90",
                        "--used", "7,90", "--tokens", "1,3", "--splits", "2,5", "--repeats", "2", "--replays", "2"]) == 0
    rows = json.loads((tmp_path / "split_attention.json").read_text())["rows"]
    context = {(r["tokens"], r["used"], r["splits"]) for r in rows if r["part"] == "context"}
    assert {(t, u, p) for t in (1, 3) for u in (7, 90) for p in (1, 2, 5)} <= context  # 1 = CPU pick
    assert sum(r["part"] == "context+merge" and r["picked"] for r in rows) == 4
    assert all(r["us"] > 0 for r in rows)
    assert "## 3 new tokens, 7 valid rows" in (tmp_path / "split_attention.md").read_text()
