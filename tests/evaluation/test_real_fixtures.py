"""Every loader and upstream-format scorer over the real annotation excerpts in ../shared/fixtures.

Runs only when that folder exists beside the clone (CI has it); otherwise skipped with the reason.
"""

from pathlib import Path

import pytest

from evaluation.config import BenchmarkConfig
from evaluation.registry import get_benchmark
from evaluation.score import rescore

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"real annotation excerpts not found at {REAL}")


def load(name, rel, fmt="auto", **extra):
    bench = get_benchmark(name)
    cfg = BenchmarkConfig(name=name, scoring=bench.scorings[0], prompt=bench.prompts[0], format=fmt, **extra)
    loaded = bench.load(REAL / rel, cfg, REAL)
    assert loaded.rejected == []  # the real excerpts are all readable
    samples = loaded.samples
    for sample in samples:  # every sample can be turned into a prompt
        assert bench.build_query(sample, cfg).prompt
    return samples


def test_ovobench_official_excerpt():
    samples = load("ovobench", "ovo_bench/ovo_bench_new.sample.json")
    by_task = {}
    for s in samples:
        by_task[s.task] = by_task.get(s.task, 0) + 1
    assert by_task == {"EPM": 2, "HLD": 2, "ASI": 2, "STU": 2, "OJR": 2, "ATR": 2, "FPD": 2, "ACR": 2, "OCR": 2,
                       "CRR": 5, "SSR": 12, "REC": 3}
    first = samples[0]
    assert (first.id, first.gold, first.query_time) == ("0", "C", 215.0)
    crr = [s for s in samples if s.task == "CRR"]
    assert [s.gold for s in crr] == ["No", "No", "Yes", "Yes", "Yes"]


def test_ovobench_rekv_result_file_rescored():
    metrics = rescore({"benchmark": "ovobench", "file": str(REAL / "ovo_bench/rekv_results.sample.json")})
    tasks = {r["task"]: r for r in metrics["tables"]["per task"]}
    assert tasks["EPM"]["correct"] == 1 and tasks["STU"]["correct"] == 2   # D/C, C/C, C/A, A/B; B/B, B/B, B/A, A/B
    assert (tasks["REC"]["correct"], tasks["REC"]["n"]) == (4, 7)           # probes: 0/1 1/1 1/1 | 1/1 2/2 1/3 1/3
    assert metrics["headline"]["Overall (mean of categories)"] == pytest.approx((25 + 50 + 400 / 7) / 3)


def test_streamingbench_question_files():
    assert len(load("streamingbench", "streamingbench/questions_real.sample.json")) == 11
    stream = load("streamingbench", "streamingbench/questions_real_stream.sample.json")
    assert [s.query_time for s in stream] == [6.0, 157.0, 301.0, 435.0, 573.0]
    tasks = {s.task for s in load("streamingbench", "streamingbench/questions_real.sample.json")}
    assert len(tasks) == 10


def test_streamingbench_rekv_output_rescored():
    metrics = rescore({"benchmark": "streamingbench", "file": str(REAL / "streamingbench/real_output_rekv.sample.json")})
    assert metrics["headline"]["Total (micro, unanswered counted wrong)"] == pytest.approx(75.0)  # " C" " A" " D"(B) " B"
    assert metrics["counts"] == {"n": 4, "correct": 3, "unanswered": 0, "errors": 0}


def test_mlvu_rekv_excerpt():
    samples = load("mlvu", "mlvu/dev_debug_mc.sample.json")
    assert len(samples) == 15 and len({s.task for s in samples}) == 7
    assert samples[0].gold == "A" and samples[2].gold == "D"  # "Red" first; "Green" 4th


def test_egoschema_excerpts():
    samples = load("egoschema", "egoschema/egoschema_subset.rekv_format.sample.json")
    assert [s.gold for s in samples] == ["C", "E", "E"]
    with_file = load("egoschema", "egoschema/egoschema_subset.rekv_format.sample.json",
                     answers="egoschema/subset_answers.sample.json")
    assert with_file[0].gold == "C"  # 7ad240de... -> 2 in subset_answers


def test_videomme_excerpts():
    rows = load("videomme", "videomme/videomme_test.sample.json")
    assert len(rows) == 9 and [s.category for s in rows[::3]] == ["short", "medium", "long"]
    assert rows[0].video == "fFjv93ACGo8.mp4" and rows[0].gold == "C"
    rekv = load("videomme", "videomme/videomme.rekv_format.sample.json")
    assert [(s.category, s.gold) for s in rekv] == [("long", "D"), ("short", "C"), ("medium", "D")]
