"""The GPU speed script's CPU path (tiny preset): every section runs and the outputs are written."""

import json

import pytest


@pytest.mark.slow
def test_dispider_speed_script_cpu_tiny(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "scripts" / "gpu" / "dispider_speed.py"
    spec = importlib.util.spec_from_file_location("dispider_speed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--out", str(tmp_path), "--preset", "tiny", "--device", "cpu", "--dtype", "float32", "--clips", "1",
                 "--warmup", "0", "--repeats", "1", "--new-tokens", "2", "--pruner-k", "4", "--minutes", "1"])
    result = json.loads((tmp_path / "dispider_speed.json").read_text())
    rows = result["vit"]["rows"]
    # no CUDA graphs on CPU: the graphed baselines are absent
    assert set(rows) == {"eager_clip", "eager_frame", "stc_graph_frame", "stc_graph_4", "stc_graph_clip"}
    assert all("ms_per_clip" in row for row in rows.values())
    # 16 frames per clip at N=4: 4 reference + 12 selective frames per clip, whatever the batching
    cacher = rows["stc_graph_4"]["cacher"]
    assert cacher["reference_frames"] == 4 and cacher["selective_frames"] == 12
    assert result["vit"]["summary"]["baseline"] == "eager_clip"
    assert result["compressor"]["full"]["sequence_tokens"] > result["compressor"]["pruned_k4"]["sequence_tokens"]
    assert result["answer"]["1min"]["clips"] == 3 and result["answer"]["1min"]["clips_answered"] == 3
    assert "Answer latency" in (tmp_path / "dispider_speed.md").read_text()
