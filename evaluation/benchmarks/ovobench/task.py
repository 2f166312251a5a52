"""OVO-Bench loader, prompts and official-parity scoring (`utils/OVOBenchScore.py`).

Items: backward/real-time MCQ records are one question at `realtime` on the prefix [0, realtime];
forward records (REC/SSR/CRR) expand to one query per `test_info` probe on [0, probe.realtime].

Scoring variants (`benchmark.scoring`):
  official   : task accuracy pooled over items (forward: over all probes of all records);
               category = mean of its task accuracies; overall = mean of the 3 categories.
  paper_per_record : as official, but a forward task's accuracy is the mean over records of each record's
               probe accuracy (the paper's description, OVO-Bench issue #7).
Both also print mean(real-time, backward) ("OVO Avg" in many papers) and the mean of all tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from evaluation.benchmarks.ovobench.prompts import TEMPLATES
from evaluation.common import mc
from evaluation.common.annotations import NUMBER, Rejects, expect_list, field, read_json, string_list
from evaluation.common.metrics import by_key, mean, tally
from evaluation.config import BenchmarkConfig
from evaluation.registry import mc_query
from evaluation.types import AnnotationError, Loaded, Sample, location

CATEGORIES = {
    "realtime": ("STU", "OJR", "ATR", "ACR", "OCR", "FPD"),
    "backward": ("EPM", "ASI", "HLD"),
    "forward": ("REC", "SSR", "CRR"),
}
CATEGORY_TITLES = {"realtime": "Real-Time Visual Perception", "backward": "Backward Active Tracing",
                   "forward": "Forward Active Responding"}
TASK_CATEGORY = {t: c for c, tasks in CATEGORIES.items() for t in tasks}
TASK_ORDER = tuple(t for tasks in CATEGORIES.values() for t in tasks)
SCORINGS = ("official", "paper_per_record")


def load(path: Path, cfg: BenchmarkConfig, root: Path) -> Loaded:
    """`ovo_bench_new.json` (a list of records; the STC/ReKV runs use this file unchanged). A bad record
    is rejected whole; a bad forward probe rejects only that probe."""
    records = expect_list(read_json(path), path)
    samples: list[Sample] = []
    rejects = Rejects()
    for index, record in enumerate(records):
        with rejects.guard():
            task = field(record, "task", str, path, index)
            if task not in TASK_CATEGORY:
                raise AnnotationError(str(path), "task", f"unknown OVO-Bench task, got {task!r} (known: {TASK_ORDER})", index)
            rid = field(record, "id", int, path, index)
            video = field(record, "video", str, path, index)
            if TASK_CATEGORY[task] == "forward":
                samples.extend(_forward_samples(record, rid, task, video, path, index, rejects))
            else:
                samples.append(_mcq_sample(record, rid, task, video, path, index))
    return Loaded(samples, rejects)


def _mcq_sample(record: dict, rid: int, task: str, video: str, path: Path, index: int) -> Sample:
    options = string_list(record, "options", path, index, min_len=2)
    gt = field(record, "gt", int, path, index)
    if not 0 <= gt < len(options):
        raise AnnotationError(str(path), "gt", f"option index outside the {len(options)} options, got {gt}", index)
    return Sample(
        id=str(rid), video=video, question=field(record, "question", str, path, index), options=options,
        gold=mc.option_letter(gt), task=task, category=TASK_CATEGORY[task],
        query_time=float(field(record, "realtime", NUMBER, path, index)), group=str(rid), precut=f"{rid}.mp4",
    )


def _forward_samples(record: dict, rid: int, task: str, video: str, path: Path, index: int, rejects: Rejects) -> list[Sample]:
    probes = field(record, "test_info", list, path, index)
    if not probes:
        raise AnnotationError(str(path), "test_info", "empty probe list", index)
    if task == "REC":
        question = f"How many times did they {field(record, 'activity', str, path, index)}?"
    elif task == "CRR":
        question = field(record, "question", str, path, index)
    samples = []
    for i, probe in enumerate(probes):
        where = location(index, "probe", i)
        with rejects.guard():
            realtime = float(field(probe, "realtime", NUMBER, path, where))
            if task == "REC":
                gold, meta = str(field(probe, "count", int, path, where)), {"activity": record["activity"]}
            else:
                kind = field(probe, "type", int, path, where)
                if kind not in (0, 1):
                    raise AnnotationError(str(path), "type", f"expected 0 or 1, got {kind!r}", where)
                gold, meta = ("Yes" if kind == 1 else "No"), {"type": kind}
                if task == "SSR":
                    question = field(probe, "step", str, path, where)
            samples.append(Sample(
                id=f"{rid}_{i}", video=video, question=question, options=(), gold=gold, task=task,
                category="forward", query_time=realtime, group=str(rid), precut=f"{rid}_{i}.mp4", meta={"probe": i, **meta},
            ))
    return samples


def build_query(sample: Sample, cfg: BenchmarkConfig):
    templates = TEMPLATES[cfg.prompt]
    if sample.task == "REC":
        prompt = templates["REC"].format(activity=sample.meta["activity"])
    elif sample.task == "SSR":
        prompt = templates["SSR"].format(step=sample.question)
    elif sample.task == "CRR":
        prompt = templates["CRR"].format(question=sample.question)
    else:
        prompt = templates["MCQ"].format(question=sample.question, options=mc.render_options(sample.options, "ovo"))
    return mc_query(sample, cfg, prompt)


def score_item(pred: dict, cfg: BenchmarkConfig) -> dict:
    """Official per-item rules: MCQ gold letter substring; REC digits; SSR/CRR "Y"/"N" or substring."""
    response = pred.get("response")
    if cfg.response_last_line:
        response = mc.last_line(response)
    answered = response is not None and response.strip() != ""
    gold, task = pred["gold"], pred["task"]
    if task == "REC":
        parsed = mc.digits(response)
        return {"parsed": parsed, "answered": answered, "correct": parsed == gold}
    if task in ("SSR", "CRR"):
        short = {"Yes": "Y", "No": "N"}[gold]
        correct = response == short or mc.substring_hit(gold, response)
        return {"parsed": gold if correct else (response or "").strip()[:8], "answered": answered, "correct": correct}
    correct = mc.substring_hit(gold, response)
    return {"parsed": gold if correct else mc.first_char(response), "answered": answered, "correct": correct}


def aggregate(scored: Sequence[dict], cfg: BenchmarkConfig) -> dict:
    tasks = by_key(scored, lambda p: p["task"], order=TASK_ORDER)
    task_acc = {t: row["accuracy"] for t, row in tasks.items()}
    notes = ["category = mean of its task accuracies; overall = mean of the categories present"]
    if cfg.scoring == "paper_per_record":
        for task in CATEGORIES["forward"]:
            if task in tasks:
                per_record = by_key([p for p in scored if p["task"] == task], lambda p: p["group"])
                task_acc[task] = mean(row["accuracy"] for row in per_record.values())
        notes.append("forward tasks: mean over records of per-record probe accuracy (scoring=paper_per_record)")
    else:
        notes.append("forward tasks: accuracy pooled over all probes (scoring=official)")
    categories = {c: mean(task_acc[t] for t in ts if t in task_acc) for c, ts in CATEGORIES.items()
                  if any(t in task_acc for t in ts)}
    task_rows = [_task_row(t, row, task_acc[t], scored, cfg) for t, row in tasks.items()]
    category_rows = [{"category": CATEGORY_TITLES[c], "tasks": sum(t in task_acc for t in CATEGORIES[c]),
                      **_count(scored, c), "accuracy": acc} for c, acc in categories.items()]
    headline = {f"{CATEGORY_TITLES[c]}": acc for c, acc in categories.items()}
    headline["Overall (mean of categories)"] = mean(categories.values())
    if "realtime" in categories and "backward" in categories:
        headline["mean(real-time, backward)"] = mean([categories["realtime"], categories["backward"]])
    headline["mean of tasks"] = mean(task_acc.values())
    missing = [t for t in TASK_ORDER if t not in task_acc]
    if missing:
        notes.append(f"tasks absent from this run (category means use the tasks present): {missing}")
    return {"headline": headline, "tables": {"per task": task_rows, "per category": category_rows}, "notes": notes}


def _task_row(task: str, row: dict, accuracy: float, scored: Sequence[dict], cfg: BenchmarkConfig) -> dict:
    """A per-task row. Under paper_per_record a forward task's score is a mean over records, so the pooled
    probe counts (correct/denominator) would not produce it: they are replaced by the record count."""
    out = {"task": task, "category": TASK_CATEGORY[task], **row, "records": row["n"], "accuracy": accuracy}
    if cfg.scoring == "paper_per_record" and TASK_CATEGORY[task] == "forward":
        out["records"] = len({p["group"] for p in scored if p["task"] == task})
        out["correct"] = out["denominator"] = None  # shown as n/a: not what the score is computed from
    return out


def _count(scored: Sequence[dict], category: str) -> dict:
    row = tally(p for p in scored if p["category"] == category)
    return {k: row[k] for k in ("n", "unanswered", "errors")}


def read_upstream(path: Path, cfg: BenchmarkConfig, model_key: Optional[str] = None) -> Loaded:
    """OVO-Bench result JSON {"backward": [...], "realtime": [...], "forward": [...]} -> predictions.
    A malformed item is rejected (counted); a response that is not text is a per-item error."""
    data = read_json(path, missing="result file not found")
    if not isinstance(data, dict) or not {"backward", "realtime", "forward"} & set(data):
        raise AnnotationError(str(path), "<top level>", "expected an OVO-Bench result object with backward/realtime/forward lists")
    preds, rejects = [], Rejects()
    for part in ("backward", "realtime", "forward"):
        items = data.get(part, [])
        if not isinstance(items, list):
            raise AnnotationError(str(path), part, f"expected a list, got {type(items).__name__}")
        for index, item in enumerate(items):
            where = f"{part} record {index + 1}"
            with rejects.guard():
                task = field(item, "task", str, path, where)
                if task not in TASK_CATEGORY:
                    raise AnnotationError(str(path), "task", f"unknown OVO-Bench task, got {task!r}", where)
                group = str(item.get("id", index))
                if part != "forward":
                    gold = field(item, "ground_truth", str, path, where)
                    preds.append(_pred(group, task, gold, item, item, path, where))
                    continue
                for i, probe in enumerate(field(item, "test_info", list, path, where)):
                    at = f"{where}, probe {i + 1}"
                    with rejects.guard():
                        gold = (str(field(probe, "count", int, path, at)) if task == "REC"
                                else ("Yes" if field(probe, "type", int, path, at) == 1 else "No"))
                        preds.append({**_pred(f"{group}_{i}", task, gold, item, probe, path, at), "group": group})
    return Loaded(preds, rejects)


def _pred(pid: str, task: str, gold: str, item: dict, source: dict, path: Path, where: str) -> dict:
    response, error = source.get("response"), None
    if response is not None and not isinstance(response, str):
        error = str(AnnotationError(str(path), "response", f"expected text, got {type(response).__name__} {response!r}", where))
        response = None
    return {"id": pid, "video": item.get("video", ""), "task": task, "category": TASK_CATEGORY[task], "group": pid,
            "gold": gold, "response": response, "error": error, "query_time": source.get("realtime"), "meta": {}}
