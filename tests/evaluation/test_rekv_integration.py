"""The runner driving the real ReKV host (tiny random-weight preset on CPU): streaming reuse and the STC
settings reach the host. Answers are noise (random weights); only the pipeline is checked."""

import json

import pytest



@pytest.mark.slow
def test_rekv_tiny_streaming_run(ev, data_root, tmp_path):
    from evaluation.runner import evaluate

    run = ev.run_config("streamingbench", data_root("streamingbench"), tmp_path / "o", "framework=rekv",
                        "framework.preset=tiny", "framework.device=cpu", "framework.dtype=float32", "framework.random_weights=true",
                        "compression=stc", "compression.pruner.tokens_per_frame=9")
    metrics = evaluate(run)
    assert metrics["counts"] == {"n": 5, "correct": metrics["counts"]["correct"], "unanswered": metrics["counts"]["unanswered"], "errors": 0}
    preds = {p["id"]: p for p in map(json.loads, (tmp_path / "o" / "predictions.jsonl").read_text().splitlines())}
    assert [preds[i]["new_frames"] for i in ("0_0", "0_1", "2_0")] == [6, 7, 6]  # only new frames ingested
    t = preds["0_1"]["timings"]
    assert t["frames"] == 7 and t["visual_tokens_kept"] == 9 * 7                  # pruner k reached the host
    assert t["vit_reference_frames"] + t["vit_selective_frames"] == 7 and t["vit_selective_frames"] > 0
    assert metrics["cost"]["frames"] == 35
    assert metrics["settings"]["model"] == "random weights"
    assert "| model | random weights |" in (tmp_path / "o" / "report.md").read_text()


@pytest.mark.slow
def test_rekv_tokens_per_frame_above_host_is_one_line_exit_2(ev, data_root, tmp_path):
    import os
    import subprocess
    import sys

    root = data_root("streamingbench")
    args = [sys.executable, "-m", "evaluation", "framework=rekv", "framework.preset=tiny", "framework.device=cpu",
            "framework.dtype=float32", "framework.random_weights=true", "benchmark=streamingbench", f"data.root={root}",
            f"benchmark.annotation={ev.FIXTURES / ev.ANNOTATIONS['streamingbench']}", f"output_dir={tmp_path / 'o'}",
            "progress=false", "compression=stc_pruner", "compression.pruner.tokens_per_frame=500"]
    done = subprocess.run(args, cwd=ev.REPO, env={**os.environ, "PYTHONPATH": str(ev.REPO)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "tokens_per_frame=500" in lines[0] and "Traceback" not in done.stderr
