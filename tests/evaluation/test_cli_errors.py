"""User errors of `evaluation`, `evaluation.score` and `evaluation.merge`: one line naming the
file/record/field/knob on stderr, exit code 2; the traceback only with HYDRA_FULL_ERROR=1.
Run in-process (the entry points' `main`), so each case costs milliseconds, not a Python start-up."""

import json
import sys

import pytest


def _fails(capsys, call):
    with pytest.raises(SystemExit) as info:
        call()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert info.value.code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def _evaluation(monkeypatch, *args):
    from evaluation.__main__ import main

    monkeypatch.setattr(sys, "argv", ["evaluation", *args])
    return main


@pytest.mark.parametrize("args, words", [
    (["compression=none", "compression.cacher.update_ratio=0.5"], ["'compression.cacher.update_ratio'", "does not apply", "compression=none"]),
    (["compression=stc_pruner", "compression.cacher.cache_interval=4"], ["'compression.cacher.cache_interval'", "does not apply"]),
    (["benchmark.fsp=1"], ["unknown setting 'benchmark.fsp'"]),
    (["limit=many"], ["'limit'", "many"]),
    (["benchmark=nope"], ["benchmark/nope", "streamingbench"]),
    (["framework=rekv"], ["framework.model_path", "framework.random_weights=true"]),
    (["benchmark.scoring=xyz"], ["scoring='xyz'"]),
    (["shard=3/2"], ["shard='3/2'"]),
    (["data.root=/nonexistent"], ["/nonexistent/ovo_bench_new.json", "not found"]),
])
def test_evaluation_user_errors_are_one_line(monkeypatch, capsys, args, words):
    line = _fails(capsys, _evaluation(monkeypatch, *args))
    for word in words:
        assert word in line, line


def test_full_error_env_shows_the_exception(monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ValueError, match="model_path"):
        _evaluation(monkeypatch, "framework=rekv")()


def _score(*args):
    from evaluation.score import main

    return lambda: main(list(args))


def test_score_refuses_a_file_of_another_benchmark(capsys, ev):
    ovo = ev.FIXTURES / "ovo_bench/rekv_results_mini.json"
    line = _fails(capsys, _score("benchmark=streamingbench", f"file={ovo}"))
    assert "looks like a ovobench results file" in line and "benchmark=ovobench" in line
    sb = ev.FIXTURES / "streamingbench/real_output_mini.json"
    assert "looks like a streamingbench" in _fails(capsys, _score("benchmark=ovobench", f"file={sb}"))


def test_score_refuses_our_predictions_of_another_benchmark(capsys, tmp_path):
    preds = tmp_path / "predictions.jsonl"
    preds.write_text("".join(json.dumps({"id": str(i), "task": "EPM", "category": "backward", "gold": "A", "response": "A"}) + "\n"
                             for i in range(5)))
    assert "looks like a ovobench" in _fails(capsys, _score("benchmark=mlvu", f"file={preds}"))


def test_score_model_key_matching_nothing_is_an_error(capsys, ev):
    sb = ev.FIXTURES / "streamingbench/real_output_mini.json"
    line = _fails(capsys, _score("benchmark=streamingbench", f"file={sb}", "model_key=rekv_typo"))
    assert "model_key='rekv_typo' matches no question" in line and "real_output_mini.json" in line


def test_score_missing_file_and_non_json(capsys, tmp_path):
    line = _fails(capsys, _score("benchmark=streamingbench", f"file={tmp_path / 'nope.json'}"))
    assert "nope.json" in line and "data.root" not in line
    junk = tmp_path / "junk.json"
    junk.write_text("not json at all")
    assert "junk.json" in _fails(capsys, _score("benchmark=streamingbench", f"file={junk}"))
    assert "unknown argument" in _fails(capsys, _score("benchmark=streamingbench", "fiel=x"))


def test_score_non_text_response_is_counted_per_item(ev, tmp_path):
    from evaluation.score import rescore

    data = json.loads((ev.FIXTURES / "streamingbench/real_output_mini.json").read_text())
    question = data[0]["questions"][0]
    question["mymodel"] = 3
    path = tmp_path / "out.json"
    path.write_text(json.dumps(data))
    metrics = rescore({"benchmark": "streamingbench", "file": str(path)})
    assert metrics["counts"]["errors"] == 1
    assert "field 'mymodel': expected a text response, got int 3" in metrics["error_examples"][0]["error"]
    assert "(record " in metrics["error_examples"][0]["error"]


def test_score_rescores_released_style_timestamps(ev, tmp_path):
    """The released result files carry MM:SS and garbage time stamps: re-scoring completes and counts."""
    from evaluation.score import rescore

    data = json.loads((ev.FIXTURES / "streamingbench/real_output_mini.json").read_text())
    data[0]["questions"][0]["time_stamp"] = "05:30"
    data[1]["questions"][0]["time_stamp"] = "n/a"
    path = tmp_path / "real_output.json"
    path.write_text(json.dumps(data))
    metrics = rescore({"benchmark": "streamingbench", "file": str(path), "out": str(tmp_path / "o")})
    assert metrics["rejected"]["count"] == 1 and metrics["counts"]["n"] == 4
    assert "Rejected records (reason)" in (tmp_path / "o" / "report.md").read_text()


def test_merge_of_a_non_run_folder(capsys, tmp_path):
    from evaluation.merge import main

    assert "config.json" in _fails(capsys, lambda: main([str(tmp_path)]))


def test_score_ovo_result_file_with_irregular_items(ev, tmp_path):
    """OVO result files: a malformed item or probe is rejected and counted, a non-text response is a
    per-item error, and every other item is scored as before."""
    from evaluation.score import rescore

    data = json.loads((ev.FIXTURES / "ovo_bench/rekv_results_mini.json").read_text())
    data["backward"].append({"id": 2, "video": "k.mp4", "question": "?", "response": "A", "ground_truth": "A"})  # no task
    data["realtime"][1]["response"] = {"text": "C"}
    data["forward"][0]["test_info"][2]["count"] = "three"
    path = tmp_path / "ovo_results.json"
    path.write_text(json.dumps(data))
    metrics = rescore({"benchmark": "ovobench", "file": str(path)})
    assert metrics["rejected"]["count"] == 2
    assert metrics["rejected"]["reasons"] == {"field 'task': missing": 1, "field 'count': expected int": 1}
    assert metrics["counts"]["errors"] == 1 and metrics["counts"]["n"] == 4 + 2 + 2
    tasks = {r["task"]: r for r in metrics["tables"]["per task"]}
    assert tasks["EPM"]["correct"] == 1 and tasks["REC"]["correct"] == 2 and tasks["REC"]["n"] == 2
    assert "realtime record 2" in metrics["error_examples"][0]["error"]


def test_key_values_reads_known_keys_over_defaults_and_names_a_bad_argument():
    from evaluation.cli import key_values

    assert key_values(["b=2", "a=x=y"], {"a", "b"}, {"a": "1", "c": "3"}) == {"a": "x=y", "b": "2", "c": "3"}
    for bad in ("z=1", "a"):
        with pytest.raises(ValueError, match=rf"unknown argument '{bad}': expected key=value with key in \['a', 'b'\]"):
            key_values([bad], {"a", "b"})
