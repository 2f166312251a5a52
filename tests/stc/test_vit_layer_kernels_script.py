"""scripts/gpu/vit_layer_kernels.py's CPU path (uncompiled functions, tiny layer): every row timed, the
files written. Its GPU rows are docs/stc/layer-kernels.md."""

import importlib.util
import json
from pathlib import Path


def test_vit_layer_kernels_script_cpu_smoke(tmp_path):
    path = Path(__file__).resolve().parents[2] / "scripts" / "gpu" / "vit_layer_kernels.py"
    spec = importlib.util.spec_from_file_location("vit_layer_kernels", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path), "--device", "cpu", "--dtype", "float32", "--tokens", "49", "--width", "64",
                        "--heads", "4", "--mlp", "128", "--layers", "2", "--modes", "eager", "--replays", "2"]) == 0
    report = json.loads((tmp_path / "kernels.json").read_text())
    rows = {(r["row"], r["B"], r["mode"]) for r in report["rows"]}
    for batch in (1, 8):
        assert {("dense", batch, "eager"), ("reference", batch, "eager"), ("selective", batch, "eager")} <= rows
    assert ("mixed (2 ref)", 8, "eager") in rows and ("mixed (2 ref)", 1, "eager") not in rows
    assert ("topk", 1, "eager") in rows and ("gemm fc2 (k rows)", 1, "eager") in rows
    assert all(r["us_per_layer"] > 0 and r["us_per_frame_layer"] <= r["us_per_layer"] for r in report["rows"])
    assert "| selective | 8 | eager |" in (tmp_path / "kernels.md").read_text()
