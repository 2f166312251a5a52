"""Every baseline through the evaluation runner on the toy host (`framework=toy compression=<name>`):
the method really runs at its budget (counts in the per-item timings) and answers are unchanged."""

import json

import pytest

from evaluation.runner import evaluate

BASELINES = {  # compression group -> (method key, budget override; the toy tower emits 4x4 = 16 tokens)
    "random_drop": ("random_drop", 4),
    "visionzip": ("visionzip", 4),
    "vidcom2": ("vidcom2", 4),
    "vidcom2_two_score": ("vidcom2", 4),
    "tome": ("tome", 4),
}


@pytest.mark.parametrize("group", sorted(BASELINES))
def test_baseline_runs_through_the_toy_host(group, ev, data_root, tmp_path):
    method, budget = BASELINES[group]
    run = ev.run_config("streamingbench", data_root("streamingbench"), tmp_path / "o", f"compression={group}",
                        f"compression.{method}.tokens_per_frame={budget}", "limit=1")
    assert run.compression_name == group and method in run.compression
    from frameworks.registry import build_host

    host = build_host("toy", run.framework, run.compression)
    metrics = evaluate(run, host=host)
    assert metrics["counts"]["n"] == 1 and metrics["counts"]["errors"] == 0
    first = json.loads((tmp_path / "o" / "predictions.jsonl").read_text().splitlines()[0])
    assert first["response"] == "C"  # toy answers do not depend on compression (grey 160, 4 options)
    timings = first["timings"]
    assert timings["frames"] == 6 and timings["visual_tokens_kept"] == budget * 6
    stats = host.compression.stats()[method]  # the method itself counted what it kept (last stream)
    assert stats["frames"] > 0 and stats["tokens_kept"] == budget * stats["frames"]


def test_paper_budget_is_the_default_and_too_large_for_the_toy_tower(ev, data_root, tmp_path):
    from evaluation.config import to_run_config
    from frameworks.registry import build_host

    for group, (method, _) in BASELINES.items():
        run = to_run_config(ev.compose([f"compression={group}"]))
        assert run.compression.get(method).tokens_per_frame == 49
        with pytest.raises(ValueError, match=rf"compression\.{method}\.tokens_per_frame=49 exceeds the 16 tokens"):
            build_host("toy", run.framework, run.compression)


@pytest.mark.parametrize("group", ["dycoke", "dycoke_released", "streamdycoke"])
def test_variable_count_baselines_run_through_the_toy_host(group, ev, data_root, tmp_path):
    """TTM keeps a variable count per frame; the toy host has no LLM, so CONTEXT hooks are not called."""
    from frameworks.registry import build_host

    run = ev.run_config("streamingbench", data_root("streamingbench"), tmp_path / "o", f"compression={group}", "limit=1")
    host = build_host("toy", run.framework, run.compression)
    metrics = evaluate(run, host=host)
    assert metrics["counts"]["errors"] == 0
    first = json.loads((tmp_path / "o" / "predictions.jsonl").read_text().splitlines()[0])
    kept = first["timings"]["visual_tokens_kept"]
    assert 0 < kept < 16 * 6
    if group.startswith("dycoke"):  # 6 frames: windows [16, 4, 4, 4] + [16, 4]
        assert kept == 48
