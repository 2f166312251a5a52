"""StreamingBench (Real-Time Visual Understanding) loader, prompt and scoring (`src/data/count.py`).

Each question is asked at `time_stamp` on the prefix [0, time_stamp] (context_time = -1, as in the
ReKV/STC runs). Scoring variants (`benchmark.scoring`):
  official : first character of the stripped response == gold letter (upstream count.py reads the
             first character; STC's copy strips first because ReKV answers start with a space).
  exact    : stripped response == gold letter (STC's count.py as shipped).
Unlike upstream, unanswered items (None/empty) stay in every denominator and are counted; the
upstream "answered only" total is printed beside it for comparison.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

from evaluation.benchmarks.streamingbench.prompts import TEMPLATES
from evaluation.common import mc
from evaluation.common.annotations import expect_list, field, read_json, string_list
from evaluation.common.metrics import by_key, tally
from evaluation.config import BenchmarkConfig
from evaluation.registry import mc_query
from evaluation.types import AnnotationError, Sample

SCORINGS = ("official", "exact")
# paper abbreviations (mapping inferred from the names, see spec B2)
TASK_ABBREV = {
    "Object Recognition": "OP", "Causal Reasoning": "CR", "Clips Summarize": "CS",
    "Attribute Recognition": "ATP", "Event Understanding": "EU", "Text-Rich Understanding": "TR",
    "Prospective Reasoning": "PR", "Spatial Understanding": "SU", "Action Recognition": "ACP", "Counting": "CT",
}
TASK_ORDER = tuple(TASK_ABBREV)
_KNOWN_QUESTION_KEYS = {"task_type", "question", "time_stamp", "answer", "options", "required_ability",
                        "audio_path", "time", "cause", "effect", "ground_truth_time_stamp", "ground_truth_output"}


def parse_timestamp(text: str, path: Path, where) -> float:
    """'HH:MM:SS' or 'H:MM:SS' -> seconds."""
    if not re.fullmatch(r"\d{1,2}:\d{2}:\d{2}(\.\d+)?", text.strip()):
        raise AnnotationError(str(path), "time_stamp", f"expected HH:MM:SS, got {text!r}", where)
    hours, minutes, seconds = text.strip().split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def load(path: Path, cfg: BenchmarkConfig, root: Path) -> list[Sample]:
    """`questions_real.json` (one entry per annotated clip) or `questions_real_stream.json` (one entry
    per video); ids are "<entry index>_<question index>" of the file, stable across runs."""
    entries = expect_list(read_json(path), path)
    samples = []
    for e, entry in enumerate(entries):
        video = field(entry, "video_path", str, path, e)
        questions = field(entry, "questions", list, path, e)
        for q, question in enumerate(questions):
            where = f"{e}.questions[{q}]"
            gold = field(question, "answer", str, path, where)
            options = string_list(question, "options", path, where, min_len=2)
            if mc.letter_index(gold) < 0 or mc.letter_index(gold) >= len(options):
                raise AnnotationError(str(path), "answer", f"expected an option letter, got {gold!r}", where)
            samples.append(Sample(
                id=f"{e}_{q}", video=video, question=field(question, "question", str, path, where), options=options,
                gold=gold, task=field(question, "task_type", str, path, where),
                query_time=parse_timestamp(field(question, "time_stamp", str, path, where), path, where),
                group=video, meta={"video_category": entry.get("video_categories", "")},
            ))
    return samples


def build_query(sample: Sample, cfg: BenchmarkConfig):
    prompt = TEMPLATES[cfg.prompt].format(question=sample.question, options=mc.render_options(sample.options, "raw_lines"))
    return mc_query(sample, cfg, prompt)


def score_item(pred: dict, cfg: BenchmarkConfig) -> dict:
    response = pred.get("response")
    parsed = mc.stripped(response) if cfg.scoring == "exact" else mc.first_char(response)
    return {"parsed": parsed, "answered": mc.stripped(response) != "", "correct": parsed == pred["gold"]}


def aggregate(scored: Sequence[dict], cfg: BenchmarkConfig) -> dict:
    per_type = by_key(scored, lambda p: p["task"], order=TASK_ORDER)
    rows = [{"task_type": t, "abbrev": TASK_ABBREV.get(t, ""), **row} for t, row in per_type.items()]
    total = tally(scored)
    answered_only = tally(scored, answered_only=True)
    return {
        "headline": {"Total (micro, unanswered counted wrong)": total["accuracy"],
                     "Total (answered only, upstream count.py)": answered_only["accuracy"]},
        "tables": {"per task type": rows},
        "notes": [f"scoring={cfg.scoring}: " + ("first character of the stripped response" if cfg.scoring == "official"
                                                else "stripped response equals the gold letter"),
                  f"{total['unanswered']} unanswered item(s) are in the micro denominator (upstream drops them)"],
    }


def read_upstream(path: Path, cfg: BenchmarkConfig, model_key: Optional[str] = None) -> list[dict]:
    """StreamingBench output: the questions JSON with each response under a model-named key (e.g. "rekv").

    `model_key=None` detects the single non-annotation key; a list response keeps its first element.
    A question without the key is an unanswered prediction (counted, never dropped).
    """
    samples = load(path, cfg, path.parent)
    entries = read_json(path)
    key = model_key or _detect_model_key(entries, path)
    preds = []
    for sample in samples:
        e, q = (int(x) for x in sample.id.split("_"))
        raw = entries[e]["questions"][q].get(key)
        response = raw[0] if isinstance(raw, list) and raw else raw
        preds.append({"id": sample.id, "video": sample.video, "task": sample.task, "category": "", "group": sample.group,
                      "gold": sample.gold, "response": response, "error": None, "query_time": sample.query_time,
                      "meta": {"model_key": key}})
    return preds


def _detect_model_key(entries: list, path: Path) -> str:
    keys = {k for entry in entries for q in entry.get("questions", []) for k in q} - _KNOWN_QUESTION_KEYS
    if len(keys) != 1:
        raise AnnotationError(str(path), "<model key>", f"cannot tell which key holds the responses ({sorted(keys)}); pass model_key=...")
    return keys.pop()
