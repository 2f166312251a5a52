"""Each benchmark's scoring variants on hand-made predictions with hand-computed expected numbers."""

import csv

import pytest

from evaluation.config import BenchmarkConfig
from evaluation.registry import get_benchmark
from evaluation.scoring import build_metrics


def pred(pid, task, gold, response, category="", group="", error=None, **meta):
    return {"id": pid, "task": task, "category": category, "group": group or pid, "gold": gold,
            "response": response, "error": error, "meta": meta}


def metrics_for(name, preds, **cfg):
    bench = get_benchmark(name)
    config = BenchmarkConfig(name=name, scoring=cfg.pop("scoring", bench.scorings[0]), prompt=bench.prompts[0], **cfg)
    return build_metrics(bench, preds, config, {"benchmark": name})


def ovo_predictions():
    return [
        pred("0", "EPM", "C", "C", "backward"), pred("1", "EPM", "A", "The best answer is C", "backward"),
        pred("2", "HLD", "D", None, "backward"),
        pred("3", "STU", "B", " B) because", "realtime"), pred("4", "OCR", "A", "", "realtime"),
        # REC record 10: 1 probe, right; record 11: 3 probes, 1 right ("1 or 2" -> "12")
        pred("10_0", "REC", "2", "2", "forward", "10"),
        pred("11_0", "REC", "1", "1", "forward", "11"), pred("11_1", "REC", "2", "1 or 2", "forward", "11"),
        pred("11_2", "REC", "3", None, "forward", "11"),
        pred("20_0", "SSR", "Yes", "Y", "forward", "20"), pred("20_1", "SSR", "No", "Yes", "forward", "20"),
        pred("30_0", "CRR", "No", "No, not yet", "forward", "30"), pred("30_1", "CRR", "Yes", "N", "forward", "30"),
    ]


def test_ovobench_official_pooled():
    metrics, scored = metrics_for("ovobench", ovo_predictions(), scoring="official")
    tasks = {row["task"]: row["accuracy"] for row in metrics["tables"]["per task"]}
    assert tasks == pytest.approx({"STU": 100, "OCR": 0, "EPM": 50, "HLD": 0, "REC": 50, "SSR": 50, "CRR": 50})
    head = metrics["headline"]
    assert head["Backward Active Tracing"] == pytest.approx(25.0)          # mean(50, 0)
    assert head["Real-Time Visual Perception"] == pytest.approx(50.0)      # mean(100, 0)
    assert head["Forward Active Responding"] == pytest.approx(50.0)        # mean(50, 50, 50)
    assert head["Overall (mean of categories)"] == pytest.approx(125 / 3)
    assert head["mean(real-time, backward)"] == pytest.approx(37.5)
    assert metrics["counts"] == {"n": 13, "correct": 6, "unanswered": 3, "errors": 0}
    assert [s["correct"] for s in scored if s["task"] == "REC"] == [True, True, False, False]


def test_ovobench_per_record_forward_differs():
    metrics, _ = metrics_for("ovobench", ovo_predictions(), scoring="paper_per_record")
    tasks = {row["task"]: row["accuracy"] for row in metrics["tables"]["per task"]}
    assert tasks["REC"] == pytest.approx((100 + 100 / 3) / 2)  # per record, not pooled 2/4
    assert metrics["headline"]["Forward Active Responding"] == pytest.approx(((100 + 100 / 3) / 2 + 50 + 50) / 3)
    assert any("paper_per_record" in n for n in metrics["notes"])
    rec = {row["task"]: row for row in metrics["tables"]["per task"]}["REC"]
    # the pooled 2/4 would contradict the per-record 66.7: not shown, the record count is
    assert rec["correct"] is None and rec["denominator"] is None and rec["records"] == 2 and rec["n"] == 4
    epm = {row["task"]: row for row in metrics["tables"]["per task"]}["EPM"]
    assert (epm["correct"], epm["denominator"]) == (1, 2)  # MCQ rows keep their counts


def test_ovobench_last_line_option():
    preds = [pred("0", "EPM", "B", "Let me think about the drawers.\nB", "backward")]
    assert metrics_for("ovobench", preds, response_last_line=True)[1][0]["correct"]
    # without it the full text is searched: the capital "L" line has no B, but the last line does
    assert metrics_for("ovobench", [pred("0", "EPM", "A", "A\nB", "backward")], response_last_line=True)[1][0]["correct"] is False


def sb_predictions():
    return [pred("0_0", "Counting", "B", " B"), pred("0_1", "Counting", "B", " B) because"),
            pred("1_0", "Clips Summarize", "C", "The best answer is C"), pred("1_1", "Clips Summarize", "A", None),
            pred("2_0", "Object Recognition", "A", "", error="videos/x.mp4: video file not found")]


def test_streamingbench_official_counts_unanswered():
    metrics, _ = metrics_for("streamingbench", sb_predictions(), scoring="official")
    rows = {r["task_type"]: r for r in metrics["tables"]["per task type"]}
    assert rows["Counting"]["accuracy"] == 100 and rows["Clips Summarize"]["accuracy"] == 0
    assert rows["Object Recognition"]["errors"] == 1 and rows["Object Recognition"]["denominator"] == 1
    assert metrics["headline"]["Total (micro, unanswered counted wrong)"] == pytest.approx(40.0)   # 2 / 5
    # upstream drops unanswered items; failed items (our errors) are never dropped: 2 / (3 answered + 1 failed)
    assert metrics["headline"]["Total (answered only, upstream count.py)"] == pytest.approx(50.0)
    assert metrics["counts"]["errors"] == 1 and metrics["counts"]["unanswered"] == 2
    # per task type, both accuracies too: Clips Summarize 0/2 overall, 0/1 answered; Counting 2/2 both
    assert rows["Clips Summarize"]["accuracy (answered only)"] == 0 and rows["Counting"]["accuracy (answered only)"] == 100
    mixed = [pred("0", "Counting", "B", " B"), pred("1", "Counting", "B", None), pred("2", "Counting", "A", " C")]
    row = metrics_for("streamingbench", mixed)[0]["tables"]["per task type"][0]
    assert row["accuracy"] == pytest.approx(100 / 3) and row["accuracy (answered only)"] == pytest.approx(50.0)


def test_non_text_response_is_a_per_item_error_naming_the_record():
    preds = [pred("0", "Counting", "B", " B"), pred("1", "Counting", "B", 7), pred("2", "Counting", "A", ["A"])]
    metrics, scored = metrics_for("streamingbench", preds)
    assert metrics["counts"]["errors"] == 2 and metrics["counts"]["correct"] == 1
    assert scored[1]["error"] == "prediction 2 (id '1'): response is int, not text"


def test_streamingbench_exact_variant_stc():
    metrics, scored = metrics_for("streamingbench", sb_predictions(), scoring="stc_release")
    assert [s["correct"] for s in scored] == [True, False, False, False, False]
    assert metrics["headline"]["Total (micro, unanswered counted wrong)"] == pytest.approx(20.0)


def test_mlvu_micro_and_task_mean():
    preds = [pred("a0", "plotQA", "B", "B) Blue"), pred("a1", "plotQA", "A", "C) Green"),
             pred("a2", "plotQA", "D", None), pred("b0", "count", "D", "D")]
    micro, _ = metrics_for("mlvu", preds, scoring="stc_release")
    m_avg, _ = metrics_for("mlvu", preds, scoring="official")
    assert list(micro["headline"]) [0] == "Overall (micro)" and micro["headline"]["Overall (micro)"] == pytest.approx(50.0)
    assert list(m_avg["headline"])[0] == "M-Avg (mean of types)"
    assert m_avg["headline"]["M-Avg (mean of types)"] == pytest.approx((100 / 3 + 100) / 2)


def test_egoschema_int_gold_and_submission(tmp_path):
    bench = get_benchmark("egoschema")
    preds = [pred("u1", "EgoSchema", "C", "C) c cooks a meal", q_uid="u1"), pred("u2", "EgoSchema", "B", "E) no", q_uid="u2"),
             pred("u3", "EgoSchema", "", "D) a drill", q_uid="u3"), pred("u4", "EgoSchema", "", "I am not sure", q_uid="u4")]
    cfg = BenchmarkConfig(name="egoschema", scoring="subset", prompt="rekv")
    metrics, scored = build_metrics(bench, preds, cfg, {})
    assert metrics["headline"]["Subset accuracy"] == pytest.approx(50.0)
    assert any("no gold" in n for n in metrics["notes"])
    bench.write_artifacts(scored, cfg, tmp_path)
    with (tmp_path / "submission.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows == [["q_uid", "answer"], ["u1", "2"], ["u2", "4"], ["u3", "3"], ["u4", "0"]]  # "I" -> invalid -> 0


def videomme_predictions():
    return [pred("1", "OCR Problems", "A", "A", "short", domain="Knowledge"),
            pred("2", "OCR Problems", "B", "The best answer is B", "short", domain="Knowledge"),
            pred("3", "Counting Problem", "C", "it is impossible to say from these frames which one is right sorry", "medium", domain="Film & Television"),
            pred("4", "Counting Problem", "D", None, "long", domain="Film & Television"),
            pred("5", "Counting Problem", "A", None, "long", domain="Knowledge", error="data/x.mp4: cannot open video")]


@pytest.mark.parametrize("scoring, overall, long_acc", [
    ("official", 200 / 3, 0.0),  # answered only: 2 / (2 answered + 1 failed item, failures stay)
    ("lmms_eval", 40.0, 0.0),    # 2 / 5
    ("stc_release", 20.0, 0.0),         # char before ")": "The best answer is B" -> "T" (miss)
])
def test_videomme_variants(scoring, overall, long_acc):
    metrics, _ = metrics_for("videomme", videomme_predictions(), scoring=scoring)
    key = next(k for k in metrics["headline"] if k.startswith("Overall"))
    assert metrics["headline"][key] == pytest.approx(overall)
    assert metrics["headline"]["Long"] == pytest.approx(long_acc)
    assert {r["domain"] for r in metrics["tables"]["per domain"]} == {"Knowledge", "Film & Television"}
    assert {r["task_type"] for r in metrics["tables"]["per task type"]} == {"OCR Problems", "Counting Problem"}


def test_unknown_variant_is_one_clear_error():
    with pytest.raises(ValueError, match="invalid scoring='pooled'.*official"):
        metrics_for("ovobench", ovo_predictions(), scoring="pooled")
