"""The runner driving the real StreamForest host (tiny random-weight preset on CPU) on all five
benchmarks' fixture annotations: streaming reuse, the released reread protocol, STC settings reaching
the host. Answers are noise (random weights); only the pipeline is checked."""

import json

import pytest

TINY = ("framework=streamforest", "framework.preset=tiny", "framework.random_weights=true", "framework.device=cpu",
        "benchmark.max_new_tokens=4",
        "framework.dtype=float32")


def _predictions(out):
    return {p["id"]: p for p in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}


@pytest.mark.slow
@pytest.mark.parametrize("benchmark", ["ovobench", "streamingbench", "mlvu", "egoschema", "videomme"])
def test_streamforest_tiny_runs_every_benchmark(ev, data_root, tmp_path, benchmark):
    from evaluation.runner import evaluate

    run = ev.run_config(benchmark, data_root(benchmark), tmp_path / "o", *TINY, "compression=stc",
                        "compression.pruner.tokens_per_frame=20", "limit=4")
    metrics = evaluate(run)
    assert metrics["counts"]["errors"] == 0 and metrics["counts"]["n"] > 0
    for prediction in _predictions(tmp_path / "o").values():
        assert isinstance(prediction["response"], str) and prediction["error"] is None
        assert prediction["timings"]["visual_tokens_in"] % 81 == 0      # 9x9 tokens per tiny frame


@pytest.mark.slow
def test_streaming_reuse_and_reread_protocol(ev, data_root, tmp_path):
    from evaluation.runner import evaluate

    root = data_root("streamingbench")
    streaming = ev.run_config("streamingbench", root, tmp_path / "s", *TINY, "compression=stc_cacher")
    evaluate(streaming)
    preds = _predictions(tmp_path / "s")
    assert [preds[i]["new_frames"] for i in ("0_0", "0_1", "2_0")] == [6, 7, 6]   # only new frames ingested
    t = preds["0_1"]["timings"]
    assert t["frames"] == 7 and t["vit_reference_frames"] + t["vit_selective_frames"] == 7 and t["vit_selective_frames"] > 0
    reread = ev.run_config("streamingbench", root, tmp_path / "r", *TINY, "framework.protocol=reread")
    evaluate(reread)
    preds = _predictions(tmp_path / "r")
    assert [preds[i]["new_frames"] for i in ("0_0", "0_1", "2_0")] == [6, 13, 19]  # runner re-ingests the prefix
    assert preds["0_1"]["timings"]["frames"] == 13
