"""The GPU baselines speed script's CPU path (tiny preset): every requested row is measured, the budget
reaches the host, and JSON + markdown are written."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu" / "baselines_speed.py"


def test_baselines_speed_script_cpu_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("baselines_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = module.parse_args(["--out", str(tmp_path), "--preset", "tiny", "--device", "cpu", "--dtype", "float32",
                              "--frames", "4", "--repeats", "1", "--budgets", "96",
                              "--methods", "full,random_drop,tome,dycoke,streamdycoke"])
    report = module.run(args)
    assert not report["errors"]
    rows = report["rows"]
    assert set(rows) == {"full", "random_drop@96", "tome@96", "dycoke", "streamdycoke"}
    assert rows["full"]["tokens_per_frame"] == 25 and rows["random_drop@96"]["tokens_per_frame"] == 12
    assert rows["tome@96"]["budget"] == "12/25" and rows["tome@96"]["tokens_per_frame"] == 12
    assert rows["dycoke"]["tokens_per_frame"] == (25 + 3 * 7) / 4
    saved = json.loads((tmp_path / "baselines_speed.json").read_text())
    assert set(saved["rows"]) == set(rows)
    assert "| tome | 12/25 |" in (tmp_path / "baselines_speed.md").read_text()
