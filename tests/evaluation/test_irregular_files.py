"""Realistic-size annotations (hundreds of records, each benchmark's real schema, generated here) with
injected irregular fields: the run completes, rejects exactly the broken records (counted by reason in
metrics.json and report.md), accepts every shape the benchmark's own code accepts, and scores the rest
exactly (expected accuracy computed from the toy host's rule on the synthetic videos).

Toy rule (frameworks/toy): option floor(level / 256 * n_options) of the newest frame's grey level;
"Yes" iff level > 127; otherwise str(frames seen % 4).
"""

import json
import random

import pytest

from evaluation.runner import evaluate

LEVELS4 = [32, 96, 160, 224]  # -> A, B, C, D with 4 options
LEVELS5 = [25, 77, 128, 179, 230]  # -> A, B, C, D, E with 5 options
LETTERS = "ABCDE"


def _videos(ev, root, template, levels):
    for v, level in enumerate(levels):
        ev.make_video(root / template.format(v), level=level)


def _run(ev, tmp_path, benchmark, annotation, data, *extra):
    path = tmp_path / "annotation.json"
    path.write_text(json.dumps(data))
    run = ev.run_config(benchmark, tmp_path / "data", tmp_path / "out", f"benchmark.annotation={path}", *extra)
    return evaluate(run, log=lambda *_: None), (tmp_path / "out" / "report.md").read_text()


def _check(metrics, report, n_ok, correct, rejected_by_reason):
    assert metrics["counts"]["n"] == n_ok and metrics["counts"]["errors"] == 0
    assert metrics["counts"]["correct"] == correct
    assert metrics["rejected"]["count"] == sum(rejected_by_reason.values())
    assert metrics["rejected"]["reasons"] == rejected_by_reason
    assert "Rejected records (reason)" in report and f"rejected annotation records: {metrics['rejected']['count']}" in report


def test_streamingbench_hundreds_of_records(ev, tmp_path):
    rng = random.Random(0)
    _videos(ev, tmp_path / "data", "videos/sample_{}_real.mp4", LEVELS4)
    entries, n_ok, correct = [], 0, 0
    shapes = ["00:00:{:02d}", "00:{:02d}", "0:00:{}", "00:00:{}"]  # HH:MM:SS, MM:SS, H:MM:S, HH:MM:S
    for e in range(320):
        v, gold, t = e % 4, rng.choice("ABCD"), rng.randint(1, 19)
        question = {"task_type": rng.choice(["Object Recognition", "Counting", "Causal Reasoning"]),
                    "question": f"q{e}?", "time_stamp": shapes[e % 4].format(t), "answer": gold,
                    "options": [f"{x}. option {x}" for x in "ABCD"], "required_ability": "perception"}
        entries.append({"video_path": f"./videos/sample_{v}_real.mp4", "video_categories": "Daily Life", "questions": [question]})
        n_ok += 1
        correct += gold == "ABCD"[v]
    broken = {
        "field 'time_stamp': expected a:b[:c] (HH:MM:SS or MM:SS)": [("time_stamp", "soon"), ("time_stamp", "1:2:3:4"), ("time_stamp", "")],
        "field 'time_stamp': expected str": [("time_stamp", 12)],
        "field 'time_stamp': missing": [("time_stamp", None)],
        "field 'answer': expected an option letter": [("answer", "E"), ("answer", "AB")],
        "field 'options': expected a list of >= 2 strings": [("options", ["A. only one"])],
    }
    e = 7
    for fields in broken.values():
        for name, value in fields:
            question = entries[e]["questions"][0]
            n_ok -= 1
            correct -= question["answer"] == "ABCD"[e % 4]
            question[name] = value
            e += 11
    entries[e]["video_path"] = 5  # a broken entry rejects its question(s)
    n_ok -= 1
    correct -= entries[e]["questions"][0]["answer"] == "ABCD"[e % 4]
    reasons = {k: len(v) for k, v in broken.items()} | {"field 'video_path': expected str": 1}
    metrics, report = _run(ev, tmp_path, "streamingbench", None, entries)
    _check(metrics, report, n_ok, correct, reasons)
    assert n_ok > 300 and metrics["headline"]["Total (micro, unanswered counted wrong)"] == pytest.approx(100 * correct / n_ok)


def test_ovobench_hundreds_of_records(ev, tmp_path):
    rng = random.Random(1)
    _videos(ev, tmp_path / "data", "src_videos/v{}.mp4", LEVELS4)
    records, n_ok, correct = [], 0, 0
    for i in range(300):
        v, task = i % 4, ["EPM", "STU", "OCR", "REC", "SSR", "CRR"][i % 6]
        base = {"id": i, "task": task, "video": f"v{v}.mp4"}
        if task in ("REC", "SSR", "CRR"):
            probes = []
            for p in range(3):
                t = rng.randint(1, 19)
                if task == "REC":
                    count = rng.randint(0, 3)
                    probes.append({"realtime": t, "count": count})
                    correct += count == (t + 1) % 4  # frames at 0..t seen so far
                else:
                    kind = rng.randint(0, 1)
                    probes.append({"realtime": t, "type": kind, **({"step": f"step {p}"} if task == "SSR" else {})})
                    correct += kind == (LEVELS4[v] > 127)
                n_ok += 1
            records.append({**base, "activity": "jump", "question": "is it there?", "test_info": probes})
        else:
            gt = rng.randint(0, 3)
            records.append({**base, "question": f"q{i}", "options": ["a", "b", "c", "d"], "gt": gt, "realtime": float(rng.randint(1, 19))})
            n_ok += 1
            correct += gt == v
    # injected: each breaks one MCQ record (1 sample) or one probe
    mcq = [r for r in records if r["task"] in ("EPM", "STU", "OCR")]
    for record, (name, value) in zip(mcq[5:], [("gt", 9), ("realtime", "soon"), ("options", None), ("task", "XYZ"), ("realtime", float("nan"))]):
        n_ok -= 1
        correct -= record["gt"] == int(record["video"][1])
        record[name] = value
    rec = next(r for r in records if r["task"] == "REC")
    probe = rec["test_info"][1]
    n_ok -= 1
    correct -= probe["count"] == (probe["realtime"] + 1) % 4
    probe["count"] = "three"
    reasons = {"field 'gt': option index outside the 4 options": 1, "field 'realtime': expected int/float": 1,
               "field 'options': missing": 1, "field 'task': unknown OVO-Bench task": 1,
               "field 'realtime': expected a finite number": 1, "field 'count': expected int": 1}
    metrics, report = _run(ev, tmp_path, "ovobench", None, records, "benchmark.video_dir=src_videos")
    _check(metrics, report, n_ok, correct, reasons)


def test_mlvu_hundreds_of_records(ev, tmp_path):
    rng = random.Random(2)
    _videos(ev, tmp_path / "data", "MLVU/video/t/v{}.mp4", LEVELS4)
    records, n_ok, correct = [], 0, 0
    for r in range(4):
        conversations = []
        for q in range(60):
            choices = [f"c{r}{q}{x}" for x in range(4)]
            answer = rng.randint(0, 3)
            conversations.append({"question": f"q{q}", "choices": choices, "answer": choices[answer],
                                  "question_type": rng.choice(["plotQA", "count", "order"])})
            n_ok += 1
            correct += answer == r
        records.append({"video_id": f"v{r}", "video_path": f"MLVU/video/t/v{r}.mp4", "duration": 20.0, "conversations": conversations})
    for conv, (name, value) in zip(records[1]["conversations"][3:], [("answer", "not a choice"), ("choices", ["one"]), ("question_type", None)]):
        n_ok -= 1
        correct -= conv["choices"].index(conv["answer"]) == 1 if isinstance(conv["answer"], str) and conv["answer"] in conv["choices"] else 0
        conv[name] = value
    records.append({"video_id": "v9", "video_path": None, "conversations": []})  # a broken video record
    reasons = {"field 'answer': not one of the choices": 1,
               "field 'choices': expected a list of >= 2 strings": 1, "field 'question_type': missing": 1,
               "field 'video_path': missing": 1}
    metrics, report = _run(ev, tmp_path, "mlvu", None, records, "framework.response_style=rekv")
    _check(metrics, report, n_ok, correct, reasons)


def test_egoschema_hundreds_of_records(ev, tmp_path):
    rng = random.Random(3)
    _videos(ev, tmp_path / "data", "egoschema/videos/u{}.mp4", LEVELS5)
    records, n_ok, correct = [], 0, 0
    for i in range(250):
        v = i % 5
        answer = rng.randint(0, 4)
        records.append({"video_id": f"q{i}", "video_path": f"egoschema/videos/u{v}.mp4",
                        "conversations": [{"question": f"q{i}", "choices": [f"o{x}" for x in range(5)], "answer": answer}]})
        n_ok += 1
        correct += answer == v
    for record, value in zip(records[10:13], [9, "2", True]):
        n_ok -= 1
        correct -= record["conversations"][0]["answer"] == int(record["video_path"][-5])
        record["conversations"][0]["answer"] = value
    reasons = {"field 'answer': expected an option index 0..4": 3}
    metrics, report = _run(ev, tmp_path, "egoschema", None, records, "framework.response_style=rekv")
    _check(metrics, report, n_ok, correct, reasons)
    assert metrics["headline"]["Subset accuracy"] == pytest.approx(100 * correct / n_ok)


def test_videomme_hundreds_of_rows(ev, tmp_path):
    rng = random.Random(4)
    _videos(ev, tmp_path / "data", "data/vid{}.mp4", LEVELS4)
    rows, n_ok, correct = [], 0, 0
    for i in range(300):
        v = i % 4
        gold = rng.choice("ABCD")
        rows.append({"video_id": f"{v:03d}", "duration": ["short", "medium", "long"][v % 3], "domain": "Knowledge",
                     "sub_category": "x", "url": "u", "videoID": f"vid{v}", "question_id": f"{v:03d}-{i}",
                     "task_type": "Counting Problem", "question": f"q{i}", "options": [f"{x}. {x.lower()}" for x in "ABCD"],
                     "answer": gold})
        n_ok += 1
        correct += gold == "ABCD"[v]
    for row, (name, value) in zip(rows[20:24], [("duration", "huge"), ("answer", "Z"), ("options", None), ("videoID", 3)]):
        n_ok -= 1
        correct -= row["answer"] == "ABCD"[int(row["video_id"])]
        row[name] = value
    reasons = {"field 'duration': expected one of ('short', 'medium', 'long')": 1, "field 'answer': expected an option letter": 1,
               "field 'options': missing": 1, "field 'videoID': expected str": 1}
    metrics, report = _run(ev, tmp_path, "videomme", None, rows, "framework.response_style=rekv")
    _check(metrics, report, n_ok, correct, reasons)
