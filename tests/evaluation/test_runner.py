"""End-to-end runs with the toy host on fixture annotations + synthetic videos (PyAV, tmp_path).

Expected numbers are hand-computed from the fixture golds and the video grey levels (see conftest):
toy answers option floor(level/256*n), "Yes" iff level > 127, and frame count % 4 for counting.
Videos are 20 s at 2 native fps; fps=1 sampling gives grid frames at t = 0, 1, ..., 19 s.
"""

import json

import pytest

from evaluation.runner import evaluate
from frameworks.registry import build_host

EXPECTED = {
    "ovobench": {"Backward Active Tracing": 250 / 3, "Real-Time Visual Perception": 50.0,
                 "Forward Active Responding": (200 / 3 + 50 + 50) / 3,
                 "Overall (mean of categories)": (250 / 3 + 50 + (200 / 3 + 100) / 3) / 3,
                 "mean(real-time, backward)": (250 / 3 + 50) / 2},
    "streamingbench": {"Total (micro, unanswered counted wrong)": 60.0},
    "mlvu": {"Overall (micro)": 200 / 3, "M-Avg (mean of types)": 75.0},
    "egoschema": {"Subset accuracy": 50.0},
    "videomme": {"Overall (answered only)": 200 / 3, "Short": 100.0, "Medium": 0.0, "Long": 100.0},
}


def toy(run, **over):
    return build_host("toy", {**run.framework, **over}, run.compression)


@pytest.mark.parametrize("benchmark", sorted(EXPECTED))
def test_end_to_end_each_benchmark(benchmark, ev, data_root, tmp_path):
    root = data_root(benchmark)
    style = "framework.response_style=rekv" if benchmark in ("mlvu", "egoschema", "videomme") else "framework.response_style=letter"
    run = ev.run_config(benchmark, root, tmp_path / "out", style)
    metrics = evaluate(run)
    for key, value in EXPECTED[benchmark].items():
        assert metrics["headline"][key] == pytest.approx(value), key
    assert metrics["counts"]["errors"] == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"| scoring | {run.benchmark.scoring} |" in report and f"| fps | {run.benchmark.fps} |" in report
    assert "stc_N_cache_interval" in report and "stc_k_tokens_per_frame" in report
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["headline"] == pytest.approx(metrics["headline"])
    if benchmark == "egoschema":
        lines = (tmp_path / "out" / "submission.csv").read_text().split()
        assert lines == ["q_uid,answer", "uid-1,2", "uid-2,4", "uid-3,0"]


def _responses(out):
    return {p["id"]: p["response"] for p in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}


def test_streaming_reuse_ingests_only_new_frames(ev, data_root, tmp_path):
    root = data_root("ovobench")
    stream_run = ev.run_config("ovobench", root, tmp_path / "s", "protocol=streaming")
    stream_host = toy(stream_run)
    evaluate(stream_run, host=stream_host)
    prefix_run = ev.run_config("ovobench", root, tmp_path / "p", "protocol=prefix")
    prefix_host = toy(prefix_run)
    evaluate(prefix_run, host=prefix_host)
    # per video, streaming ingests frames up to its last query once: 16 + 19 + 17 + 8 + 20
    assert stream_host.ingested_frames_total == 80 and stream_host.resets == 5
    # prefix re-ingests [0, t] per question: (7+13+16) + (6+9+19) + (5+10+17) + (4+8) + (3+7+13+20)
    assert prefix_host.ingested_frames_total == 157 and prefix_host.resets == 15
    preds = {p["id"]: p for p in map(json.loads, (tmp_path / "s" / "predictions.jsonl").read_text().splitlines())}
    assert [preds[i]["new_frames"] for i in ("0", "1", "2")] == [7, 6, 3]          # kitchen: t = 6, 12, 15
    assert [preds[f"8_{i}"]["new_frames"] for i in range(4)] == [3, 4, 6, 7]       # film: t = 2, 6, 12, 19
    assert _responses(tmp_path / "s") == _responses(tmp_path / "p")


def test_non_incremental_host_falls_back_to_prefix(ev, data_root, tmp_path):
    run = ev.run_config("ovobench", data_root("ovobench"), tmp_path / "o", "framework.supports_incremental=false")
    host = toy(run)
    evaluate(run, host=host)
    assert host.ingested_frames_total == 157


def _comparable(metrics):
    return {k: metrics[k] for k in ("headline", "tables", "counts")}


def test_resume_after_killed_run_is_identical(ev, data_root, tmp_path):
    root = data_root("ovobench")
    full = evaluate(ev.run_config("ovobench", root, tmp_path / "full"))
    out = tmp_path / "killed"
    lines = (tmp_path / "full" / "predictions.jsonl").read_text().splitlines()
    out.mkdir()
    (out / "predictions.jsonl").write_text("\n".join(lines[:6]) + "\n" + '{"id": "7_1", "resp')  # died mid-write
    run = ev.run_config("ovobench", root, out)
    host = toy(run)
    resumed = evaluate(run, host=host)
    assert host.answers == len(lines) - 6
    ids = [json.loads(line)["id"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == len(lines)
    assert _comparable(resumed) == _comparable(full)
    again_host = toy(run)
    assert _comparable(evaluate(run, host=again_host)) == _comparable(full) and again_host.answers == 0


def test_shards_and_merge_equal_unsharded(ev, data_root, tmp_path):
    from evaluation.merge import merge

    root = data_root("streamingbench")
    full = evaluate(ev.run_config("streamingbench", root, tmp_path / "full"))
    out = tmp_path / "sharded"
    first = evaluate(ev.run_config("streamingbench", root, out, "shard=0/2"))
    with pytest.raises(FileNotFoundError, match="predictions.shard-1-of-2.jsonl"):
        merge(out)
    second = evaluate(ev.run_config("streamingbench", root, out, env={"RANK": "1", "WORLD_SIZE": "2"}))
    assert first["counts"]["n"] + second["counts"]["n"] == full["counts"]["n"] == 5
    assert not (out / "metrics.json").exists()
    merged = merge(out)
    assert _comparable(merged) == _comparable(full)
    assert (out / "report.md").is_file() and len((out / "predictions.jsonl").read_text().splitlines()) == 5


def test_missing_and_corrupt_videos_are_counted_errors(ev, data_root, tmp_path):
    root = data_root("ovobench")
    (root / "src_videos/YouTube_Games/game.mp4").unlink()
    (root / "src_videos/MovieNet/film.mp4").write_bytes(b"garbage" * 100)
    metrics = evaluate(ev.run_config("ovobench", root, tmp_path / "o"))
    assert metrics["counts"]["errors"] == 3 + 4 and metrics["counts"]["n"] == 15
    assert metrics["error_reasons"] == {"video file not found": 3, "cannot open video": 4}
    tasks = {r["task"]: r for r in metrics["tables"]["per task"]}
    assert tasks["STU"]["errors"] == 1 and tasks["STU"]["accuracy"] == 0 and tasks["EPM"]["accuracy"] == 50
    assert "video file not found" in (tmp_path / "o" / "report.md").read_text()


def test_host_failure_is_recorded_per_item(ev, data_root, tmp_path):
    run = ev.run_config("ovobench", data_root("ovobench"), tmp_path / "o", "framework.fail_on=clapping")
    metrics = evaluate(run)
    rec = {r["task"]: r for r in metrics["tables"]["per task"]}["REC"]
    assert rec["errors"] == 3 and rec["accuracy"] == 0 and metrics["counts"]["errors"] == 3
    assert list(metrics["error_reasons"]) == ["host error: RuntimeError: toy host: injected failure"]


def test_stc_settings_reach_host_and_report(ev, data_root, tmp_path):
    run = ev.run_config("streamingbench", data_root("streamingbench"), tmp_path / "o", "compression=stc",
                        "compression.pruner.tokens_per_frame=4", "compression.cacher.cache_interval=3")
    cacher, pruner = run.compression.get("cacher"), run.compression.get("pruner")
    assert (cacher.cache_interval, cacher.update_ratio, pruner.tokens_per_frame) == (3, 0.25, 4)
    evaluate(run)
    first = json.loads((tmp_path / "o" / "predictions.jsonl").read_text().splitlines()[0])
    t = first["timings"]
    assert t["frames"] == 6 and t["visual_tokens_kept"] == 4 * 6 and t["vit_reference_frames"] == 2  # frames 0, 3
    report = (tmp_path / "o" / "report.md").read_text()
    assert "| stc_N_cache_interval | 3 |" in report and "| stc_k_tokens_per_frame | 4 |" in report


def test_limit_keeps_first_samples(ev, data_root, tmp_path):
    metrics = evaluate(ev.run_config("ovobench", data_root("ovobench"), tmp_path / "o", "limit=4"))
    assert metrics["counts"]["n"] == 4
    assert {r["task"] for r in metrics["tables"]["per task"]} == {"EPM", "HLD", "ASI"}


def test_precut_clip_is_used_when_present(ev, data_root, tmp_path):
    root = data_root("ovobench")
    ev.make_video(root / "chunked_videos" / "0.mp4", seconds=3, level=32)  # OVO {id}.mp4 prefix clip
    run = ev.run_config("ovobench", root, tmp_path / "o", "benchmark.precut_dir=chunked_videos")
    host = toy(run)
    evaluate(run, host=host)
    preds = {p["id"]: p for p in map(json.loads, (tmp_path / "o" / "predictions.jsonl").read_text().splitlines())}
    assert preds["0"]["new_frames"] == 3 and preds["0"]["response"] == "A"  # clip frames (grey 32), not the source (224 -> D)
    assert preds["1"]["new_frames"] == 13 and preds["1"]["response"] == "D"  # no clip: source restarted from 0, t <= 12


def test_whole_video_questions_ingest_each_video_once(ev, data_root, tmp_path):
    run = ev.run_config("mlvu", data_root("mlvu"), tmp_path / "o", "protocol=prefix")
    host = toy(run)
    evaluate(run, host=host)
    # 2 videos at 0.5 fps over 20 s -> 10 frames each; the second question on movie_a reuses the stream
    assert host.resets == 2 and host.ingested_frames_total == 20 and host.answers == 3
    assert (tmp_path / "o" / "accuracy.png").stat().st_size > 0


def test_world_size_maps_cuda_device_per_rank(ev):
    from evaluation.config import to_run_config

    cfg = ev.compose(["+framework.device=cuda"])
    run = to_run_config(cfg, env={"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert run.framework["device"] == "cuda:1" and run.shard_index == 1


def test_per_item_cost_and_summed_cost(ev, data_root, tmp_path):
    run = ev.run_config("streamingbench", data_root("streamingbench"), tmp_path / "o", "compression=stc_pruner",
                        "compression.pruner.tokens_per_frame=4")
    metrics = evaluate(run)
    preds = {p["id"]: p for p in map(json.loads, (tmp_path / "o" / "predictions.jsonl").read_text().splitlines())}
    # sample_1 questions at t = 5, 12, 18: each item carries only the frames it added
    assert [preds[i]["timings"]["frames"] for i in ("0_0", "0_1", "2_0")] == [6, 7, 6]
    assert preds["0_1"]["timings"]["visual_tokens_kept"] == 4 * 7 and preds["0_1"]["timings"]["visual_tokens_in"] == 16 * 7
    cost = metrics["cost"]
    assert cost["frames"] == cost["frames_ingested"] == 19 + 16 and cost["visual_token_keep_ratio"] == pytest.approx(0.25)
    assert "Host cost" in (tmp_path / "o" / "report.md").read_text()


def test_resume_refuses_other_settings(ev, data_root, tmp_path):
    root = data_root("streamingbench")
    evaluate(ev.run_config("streamingbench", root, tmp_path / "o", "limit=2"))
    evaluate(ev.run_config("streamingbench", root, tmp_path / "o"))  # a larger limit extends the same run
    with pytest.raises(ValueError, match=r"other settings.*fps: 1.0 -> 0.5"):
        evaluate(ev.run_config("streamingbench", root, tmp_path / "o", "benchmark.fps=0.5"))


def test_toy_host_implements_the_protocol(ev):
    from frameworks.protocol import StreamingVideoLLM
    from stc.config import STCConfig

    host = build_host("toy", {}, STCConfig())
    assert isinstance(host, StreamingVideoLLM) and host.supports_incremental
    with pytest.raises(ValueError, match="unknown toy host setting"):
        build_host("toy", {"model_path": "x"}, STCConfig())


def test_task_subset_runs_only_those_tasks_and_rejects_unknown_names(ev, data_root, tmp_path):
    root = data_root("ovobench")
    evaluate(ev.run_config("ovobench", root, tmp_path / "sub", "benchmark.tasks=[EPM,REC]"))
    lines = [json.loads(l) for l in (tmp_path / "sub" / "predictions.jsonl").read_text().splitlines()]
    assert lines and {l["task"] for l in lines} == {"EPM", "REC"}
    with pytest.raises(ValueError, match=r"\['XYZ'\] not in the annotation"):
        evaluate(ev.run_config("ovobench", root, tmp_path / "bad", "benchmark.tasks=[EPM,XYZ]"))


def test_failed_items_are_retried_on_rerun(ev, data_root, tmp_path):
    root = data_root("ovobench")
    game = root / "src_videos/YouTube_Games/game.mp4"
    game.unlink()
    run = ev.run_config("ovobench", root, tmp_path / "o")
    first = evaluate(run, log=lambda *_: None)
    assert first["counts"]["errors"] == 3
    ev.make_video(game, level=32)  # the user fixes the video
    messages = []
    host = toy(run)
    second = evaluate(run, host=host, log=messages.append)
    assert host.answers == 3 and second["counts"]["errors"] == 0 and second["counts"]["n"] == 15
    assert any("retrying 3 item(s)" in m for m in messages)
    ids = [json.loads(line)["id"] for line in (tmp_path / "o" / "predictions.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 15
    full = evaluate(ev.run_config("ovobench", root, tmp_path / "full"))
    assert _comparable(second) == _comparable(full)


def test_retry_failed_false_keeps_old_errors(ev, data_root, tmp_path):
    root = data_root("ovobench")
    (root / "src_videos/YouTube_Games/game.mp4").unlink()
    evaluate(ev.run_config("ovobench", root, tmp_path / "o"))
    ev.make_video(root / "src_videos/YouTube_Games/game.mp4", level=32)
    run = ev.run_config("ovobench", root, tmp_path / "o", "retry_failed=false")
    host = toy(run)
    assert evaluate(run, host=host)["counts"]["errors"] == 3 and host.answers == 0


def test_report_states_the_model(ev, data_root, tmp_path):
    run = ev.run_config("streamingbench", data_root("streamingbench"), tmp_path / "o")
    metrics = evaluate(run)
    assert metrics["settings"]["model"] == "n/a (host has no model_path)"
    assert "| model | n/a (host has no model_path) |" in (tmp_path / "o" / "report.md").read_text()
    saved = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert saved["settings"]["model"] == metrics["settings"]["model"]


def test_any_host_with_model_path_needs_it_or_random_weights(ev):
    from evaluation.config import check_model, host_settings, model_label

    with pytest.raises(ValueError, match="framework=streamforest has no framework.model_path"):
        check_model({"name": "streamforest", "model_path": None})
    check_model({"name": "streamforest", "model_path": None, "random_weights": True})
    check_model({"name": "toy"})
    assert model_label({"name": "x", "model_path": "/m/llava"}) == "/m/llava"
    assert model_label({"name": "x", "model_path": None, "random_weights": True}) == "random weights"
    assert host_settings({"name": "x", "model_path": None, "random_weights": True})["random_weights"] is True  # hosts check it too


@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_prefetch_depth_does_not_change_results(ev, data_root, tmp_path, prefetch):
    root = data_root("ovobench")
    (root / "src_videos/MovieNet/film.mp4").write_bytes(b"garbage" * 100)  # errors still per item
    run = ev.run_config("ovobench", root, tmp_path / f"p{prefetch}", f"prefetch={prefetch}")
    host = toy(run)
    metrics = evaluate(run, host=host)
    assert host.ingested_frames_total == 80 - 20 and metrics["counts"]["errors"] == 4
    assert metrics["error_reasons"] == {"cannot open video": 4}
    assert metrics["cost"]["decode_wait_ms"] >= 0


def test_prefetch_after_host_failure_matches_inline_decoding(ev, data_root, tmp_path):
    """A host error resets the stream, so the runner's reads leave the prefetch plan: same answers."""
    root = data_root("ovobench")
    outputs = []
    for prefetch in (0, 2):
        run = ev.run_config("ovobench", root, tmp_path / f"p{prefetch}", f"prefetch={prefetch}", "framework.fail_on=clapping")
        host = toy(run)
        evaluate(run, host=host)
        lines = [json.loads(line) for line in (tmp_path / f"p{prefetch}" / "predictions.jsonl").read_text().splitlines()]
        outputs.append([(p["id"], p["response"], p["error"], p["new_frames"]) for p in lines])
        outputs.append(host.ingested_frames_total)
    assert outputs[0] == outputs[2] and outputs[1] == outputs[3]
    assert sum(1 for p in outputs[0] if p[2]) == 3
