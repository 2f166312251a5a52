"""The GPU speed script's CPU path (tiny preset, quick counts): every section runs and reports."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu" / "streamforest_speed.py"


def test_speed_script_cpu_path_writes_json_and_markdown(tmp_path):
    spec = importlib.util.spec_from_file_location("streamforest_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--out", str(tmp_path), "--preset", "tiny", "--device", "cpu", "--dtype", "float32",
                          "--quick", "--minutes", "0.25,0.5"])
    saved = json.loads((tmp_path / "streamforest_speed.json").read_text())
    assert saved["streaming"]["stc_frames"] == {"reference": 2, "selective": 6}     # N=4 over 8 frames
    assert set(saved["reread"]["stc"]) == {"batch4_ms_per_frame", "batch4_frames"}
    assert saved["reread"]["stc"]["batch4_frames"]["selective"] == 6                 # one question, 8 frames, N=4
    memory = saved["memory"]
    assert memory["memory"]["0.5min"]["frames"] == 30 and memory["memory"]["0.5min"]["counts"]["frames"] == 30
    assert memory["prefill"]["0.5min"]["visual_tokens"] <= memory["memory_token_bound"]
    e2e = saved["end_to_end"]
    assert e2e["stc"]["selective_frames"] == 3 and e2e["baseline"]["selective_frames"] == 0
    assert "ViT, streaming mode" in (tmp_path / "streamforest_speed.md").read_text()
    assert result["wall_s"] > 0
