"""CPU smoke run of scripts/gpu/livecc_speed.py on the tiny preset: every section runs and reports."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "gpu" / "livecc_speed.py"


@pytest.mark.slow
def test_speed_script_cpu_path(tmp_path):
    spec = importlib.util.spec_from_file_location("livecc_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.main(["--out", str(tmp_path), "--preset", "tiny", "--device", "cpu", "--dtype", "float32",
                          "--height", "70", "--width", "100", "--min-pixels", "784", "--max-pixels", "10000",
                          "--groups", "2", "--cache-interval", "2", "--tokens-per-group", "3",
                          "--history-seconds", "3", "--turns", "1", "--commentary-tokens", "2"])
    saved = json.loads((tmp_path / "livecc_speed.json").read_text())
    assert saved["vit"]["llm_tokens_per_group"] == 8 and saved["vit"]["patches_per_group"] == 32
    vit = report["vit"]
    assert vit["livecc_eager"]["calls"] == 2 and vit["graphed"] == {"skipped": "CUDA graphs need a GPU"}
    assert (vit["stc_eager"]["reference_groups"], vit["stc_eager"]["selective_groups"]) == (3, 3)  # 4 warm-up + 2
    assert report["prefill"]["pruned"]["cache_tokens"] < report["prefill"]["full"]["cache_tokens"]
    turn = report["turn"]
    assert turn["stc"]["vit_selective_groups"] > 0 and turn["stc"]["visual_tokens_kept_per_second"] == 3.0
    assert turn["baseline"]["visual_tokens_kept_per_second"] == 8.0
    assert "| stc |" in (tmp_path / "livecc_speed.md").read_text()
