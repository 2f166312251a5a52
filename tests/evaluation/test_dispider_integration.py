"""The runner driving the real Dispider host (tiny random weights on CPU) on all five benchmarks'
fixtures: streaming reuse, clip bookkeeping and the STC settings reach the host. Answers are noise
(random weights); only the pipeline is checked."""

import json

import pytest

TINY = ("framework=dispider", "framework.preset=tiny", "framework.random_weights=true", "framework.device=cpu",
        "framework.dtype=float32", "benchmark.max_new_tokens=3")


@pytest.mark.slow
def test_dispider_tiny_streaming_run_with_stc(ev, data_root, tmp_path):
    from evaluation.runner import evaluate

    run = ev.run_config("streamingbench", data_root("streamingbench"), tmp_path / "o", *TINY,
                        "compression=stc", "compression.pruner.tokens_per_frame=6")
    metrics = evaluate(run)
    assert metrics["counts"]["n"] == 5 and metrics["counts"]["errors"] == 0
    preds = {p["id"]: p for p in map(json.loads, (tmp_path / "o" / "predictions.jsonl").read_text().splitlines())}
    assert [preds[i]["new_frames"] for i in ("0_0", "0_1", "2_0")] == [6, 7, 6]  # only new frames ingested
    t = preds["0_1"]["timings"]
    # 13 frames so far: no complete 16-frame clip; the 13-frame tail answers, outside the STC schedule
    assert t["frames"] == 7 and t["vit_reference_frames"] + t["vit_selective_frames"] == 0 and t["vit_ms"] > 0
    assert metrics["cost"]["frames"] == 35


@pytest.mark.slow
@pytest.mark.parametrize("benchmark", ["ovobench", "mlvu", "egoschema", "videomme"])
def test_dispider_tiny_runs_every_benchmark(ev, data_root, tmp_path, benchmark):
    from evaluation.runner import evaluate

    extra = ()
    if benchmark == "egoschema":
        extra = ("benchmark.answers=" + str(ev.FIXTURES / "egoschema/subset_answers_mini.json"),)
    # Dispider samples ~1 fps (one 16-frame clip per 16 s): the 20 s fixtures give one clip and a tail
    run = ev.run_config(benchmark, data_root(benchmark), tmp_path / "o", *TINY, "compression=stc_cacher",
                        "benchmark.fps=1", "limit=4", *extra)
    metrics = evaluate(run)
    assert metrics["counts"]["errors"] == 0 and metrics["counts"]["n"] > 0
    preds = [json.loads(line) for line in (tmp_path / "o" / "predictions.jsonl").read_text().splitlines()]
    assert all(p["response"] is not None for p in preds)
    assert any(p["timings"]["vit_selective_frames"] > 0 for p in preds)  # 20 s at 1 fps: one full clip
