"""scripts/gpu/eval_two_gpu.sh on CPU (tiny ReKV preset, 2 torchrun processes without a process group)
and evaluation.compare, which decides whether sharded and single runs agree."""

import json
import os
import subprocess

import pytest

from evaluation.compare import compare
from evaluation.runner import evaluate


def test_compare_finds_a_changed_prediction(ev, data_root, tmp_path):
    root = data_root("streamingbench")
    evaluate(ev.run_config("streamingbench", root, tmp_path / "a"))
    evaluate(ev.run_config("streamingbench", root, tmp_path / "b"))
    assert compare(tmp_path / "a", tmp_path / "b")["identical"]
    lines = [json.loads(line) for line in (tmp_path / "b" / "predictions.jsonl").read_text().splitlines()]
    lines[2]["response"] = "Z"
    (tmp_path / "b" / "predictions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = compare(tmp_path / "a", tmp_path / "b")
    assert not result["identical"] and result["field_differences"][0][:2] == (lines[2]["id"], "response")


@pytest.mark.slow
def test_two_process_script_cpu_path(ev, tmp_path):
    env = {**os.environ, "PRESET": "tiny", "DEVICE": "cpu", "DTYPE": "float32", "VIDEOS": "3", "SECONDS_PER_VIDEO": "6",
           "QUESTIONS": "3", "PY": os.environ.get("PYTHON", "python"), "TMPDIR": str(tmp_path)}
    import sys

    env["PY"] = sys.executable
    done = subprocess.run(["bash", "scripts/gpu/eval_two_gpu.sh", str(tmp_path / "out")], cwd=ev.REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = (tmp_path / "out" / "two_gpu.md").read_text()
    assert "**IDENTICAL** predictions and report" in summary and "| items | 9 | 9 |" in summary
    assert (tmp_path / "out" / "report_sharded.md").is_file() and (tmp_path / "out" / "metrics_single.json").is_file()
