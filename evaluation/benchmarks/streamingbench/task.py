"""StreamingBench (Real-Time Visual Understanding) loader, prompt and scoring (`src/data/count.py`).

Each question is asked at `time_stamp` on the prefix [0, time_stamp] (context_time = -1, as in the
ReKV/STC runs). Scoring variants (`benchmark.scoring`):
  official : first character of the stripped response == gold letter (upstream count.py reads the
             first character; STC's copy strips first because ReKV answers start with a space).
  stc_release : stripped response == gold letter (the STC release's copy of count.py, as shipped).
Unlike upstream, unanswered items (None/empty) stay in every denominator and are counted; the
upstream "answered only" total is printed beside it for comparison.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

from evaluation.benchmarks.streamingbench.prompts import TEMPLATES
from evaluation.common import mc
from evaluation.common.annotations import Rejects, expect_list, field, read_json, string_list
from evaluation.common.metrics import by_key, tally
from evaluation.config import BenchmarkConfig
from evaluation.registry import mc_query
from evaluation.types import AnnotationError, Loaded, Sample, location

SCORINGS = ("official", "stc_release")
# paper abbreviations (mapping inferred from the names, see spec B2)
TASK_ABBREV = {
    "Object Recognition": "OP", "Causal Reasoning": "CR", "Clips Summarize": "CS",
    "Attribute Recognition": "ATP", "Event Understanding": "EU", "Text-Rich Understanding": "TR",
    "Prospective Reasoning": "PR", "Spatial Understanding": "SU", "Action Recognition": "ACP", "Counting": "CT",
}
TASK_ORDER = tuple(TASK_ABBREV)
_KNOWN_QUESTION_KEYS = {"task_type", "question", "time_stamp", "answer", "options", "required_ability",
                        "audio_path", "time", "cause", "effect", "ground_truth_time_stamp", "ground_truth_output"}


_TIMESTAMP = re.compile(r"(\d+):(\d+)(?::(\d+(?:\.\d+)?))?")


def parse_timestamp(text: str, path: Path, where) -> float:
    """'a:b[:c]' -> seconds, every shape the released files carry: 'HH:MM:SS', 'H:MM:SS', 'HH:MM:S'
    (single-digit seconds) and 'MM:SS'. Two parts are minutes:seconds, three hours:minutes:seconds
    (the benchmark's inference code splits on ':' the same way). Anything else rejects the question."""
    match = _TIMESTAMP.fullmatch(text.strip())
    if match is None:
        raise AnnotationError(str(path), "time_stamp", f"expected a:b[:c] (HH:MM:SS or MM:SS), got {text!r}", where)
    a, b, c = match.groups()
    return int(a) * 60 + float(b) if c is None else int(a) * 3600 + int(b) * 60 + float(c)


def load(path: Path, cfg: BenchmarkConfig, root: Path) -> Loaded:
    """`questions_real.json` (one entry per annotated clip) or `questions_real_stream.json` (one entry
    per video); ids are "<entry index>_<question index>" of the file (0-based), stable across runs.
    A bad entry rejects its questions, a bad question only itself."""
    entries = expect_list(read_json(path), path)
    samples, rejects = [], Rejects()
    for e, entry in enumerate(entries):
        questions = None
        with rejects.guard():
            video = field(entry, "video_path", str, path, e)
            questions = field(entry, "questions", list, path, e)
        for q, question in enumerate(questions or ()):
            with rejects.guard():
                samples.append(_sample(path, entry, e, video, question, q))
    return Loaded(samples, rejects)


def _sample(path: Path, entry: dict, e: int, video: str, question, q: int) -> Sample:
    where = location(e, "question", q)
    gold = field(question, "answer", str, path, where)
    options = string_list(question, "options", path, where, min_len=2)
    if mc.letter_index(gold) < 0 or mc.letter_index(gold) >= len(options):
        raise AnnotationError(str(path), "answer", f"expected an option letter, got {gold!r}", where)
    return Sample(
        id=f"{e}_{q}", video=video, question=field(question, "question", str, path, where), options=options,
        gold=gold, task=field(question, "task_type", str, path, where),
        query_time=parse_timestamp(field(question, "time_stamp", str, path, where), path, where),
        group=video, meta={"video_category": entry.get("video_categories", "")},
    )


def build_query(sample: Sample, cfg: BenchmarkConfig):
    prompt = TEMPLATES[cfg.prompt].format(question=sample.question, options=mc.render_options(sample.options, "raw_lines"))
    return mc_query(sample, cfg, prompt)


def score_item(pred: dict, cfg: BenchmarkConfig) -> dict:
    response = pred.get("response")
    parsed = mc.stripped(response) if cfg.scoring == "stc_release" else mc.first_char(response)
    return {"parsed": parsed, "answered": mc.stripped(response) != "", "correct": parsed == pred["gold"]}


def aggregate(scored: Sequence[dict], cfg: BenchmarkConfig) -> dict:
    per_type = by_key(scored, lambda p: p["task"], order=TASK_ORDER)
    answered = by_key(scored, lambda p: p["task"], answered_only=True, order=TASK_ORDER)
    # both accuracies side by side, as in the totals: upstream count.py reports the answered-only one
    rows = [{"task_type": t, "abbrev": TASK_ABBREV.get(t, ""), **row, "accuracy (answered only)": answered[t]["accuracy"]}
            for t, row in per_type.items()]
    total = tally(scored)
    answered_only = tally(scored, answered_only=True)
    return {
        "headline": {"Total (micro, unanswered counted wrong)": total["accuracy"],
                     "Total (answered only, upstream count.py)": answered_only["accuracy"]},
        "tables": {"per task type": rows},
        "notes": [f"scoring={cfg.scoring}: " + ("first character of the stripped response" if cfg.scoring == "official"
                                                else "stripped response equals the gold letter (STC release count.py)"),
                  f"{total['unanswered']} unanswered item(s) are in the micro denominator (upstream drops them)"],
    }


def read_upstream(path: Path, cfg: BenchmarkConfig, model_key: Optional[str] = None) -> Loaded:
    """StreamingBench output: the questions JSON with each response under a model-named key (e.g. "rekv").

    `model_key=None` detects the single non-annotation key; a key that no question carries is an error
    (it would score 0 % silently). A list response keeps its first element; a question without the key
    is an unanswered prediction (counted, never dropped); a response that is not text is a per-item error.
    """
    loaded = load(path, cfg, path.parent)
    entries = read_json(path)
    present = _response_keys(entries)
    key = model_key or _detect_model_key(present, path)
    if key not in present:
        raise AnnotationError(str(path), key, f"model_key={key!r} matches no question; response keys in the file: {sorted(present)}")
    preds = []
    for sample in loaded.samples:
        e, q = (int(x) for x in sample.id.split("_"))
        raw = entries[e]["questions"][q].get(key)
        response = raw[0] if isinstance(raw, list) and raw else raw
        error = None
        if response is not None and not isinstance(response, str):
            error = str(AnnotationError(str(path), key, f"expected a text response, got {type(response).__name__} {response!r}",
                                        location(e, "question", q)))
            response = None
        preds.append({"id": sample.id, "video": sample.video, "task": sample.task, "category": "", "group": sample.group,
                      "gold": sample.gold, "response": response, "error": error, "query_time": sample.query_time,
                      "meta": {"model_key": key}})
    return Loaded(preds, loaded.rejected)


def _response_keys(entries: list) -> set:
    return {k for entry in entries if isinstance(entry, dict) for q in entry.get("questions") or [] if isinstance(q, dict)
            for k in q} - _KNOWN_QUESTION_KEYS


def _detect_model_key(keys: set, path: Path) -> str:
    if len(keys) != 1:
        raise AnnotationError(str(path), "<model key>", f"cannot tell which key holds the responses ({sorted(keys)}); pass model_key=...")
    return next(iter(keys))
