"""Video-MME loader (official parquet / its JSON rows, or ReKV format), prompts and scoring.

Scoring variants (`benchmark.scoring`):
  official  : Video-MME `eval_your_results.py` extraction (drop "The best answer is"-style prefixes,
              first A-D letter); unanswered items leave the denominator (answered only).
  lmms_eval : same extraction, unanswered items counted wrong.
  stc_release : ReKV/STC release rule, character before the first ")"; all items in the denominator.
Reported per duration bucket (short/medium/long), per domain, per task type, and overall (micro).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from evaluation.common import mc
from evaluation.common.annotations import (MISSING_ANNOTATION, Rejects, detect_format, expect_list, field,
                                           iter_conversations, read_json, string_list)
from evaluation.common.metrics import by_key, tally
from evaluation.common.prompts import REKV_PRIMER, rekv_mc_prompt
from evaluation.config import BenchmarkConfig
from evaluation.registry import mc_query
from evaluation.types import AnnotationError, Loaded, Sample

SCORINGS = ("official", "lmms_eval", "stc_release")
DURATIONS = ("short", "medium", "long")
# "videomme": the Video-MME authors' prompt as quoted in the spec (marked unverified there)
TEMPLATES = {
    "rekv": None,
    "videomme": ("Select the best answer to the following multiple-choice question based on the video. Respond "
                 "with only the letter (A, B, C, or D) of the correct option.\n{question}\n{options}\nThe best answer is:"),
}


def load(path: Path, cfg: BenchmarkConfig, root: Path) -> Loaded:
    if path.suffix == ".parquet":
        records = _read_parquet(path)
    else:
        records = expect_list(read_json(path), path)
    fmt = cfg.format if cfg.format != "auto" else detect_format(records)
    rejects = Rejects()
    samples = _load_rekv(path, records, rejects) if fmt == "rekv" else _load_official(path, records, rejects)
    return Loaded(samples, rejects)


def _read_parquet(path: Path) -> list:
    """Rows as dicts; options (a numpy array in the parquet) become a list. A file that is not parquet
    stops the run with one error; a row with odd options is left for the per-record checks."""
    import pandas as pd

    if not path.is_file():
        raise AnnotationError(str(path), "<file>", MISSING_ANNOTATION)
    try:
        records = pd.read_parquet(path).to_dict(orient="records")
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError subclasses
        raise AnnotationError(str(path), "<file>", f"not a readable parquet file ({type(err).__name__}: {err})") from None
    for record in records:
        options = record.get("options")
        if hasattr(options, "tolist"):
            record["options"] = options.tolist()
    return records


def _letter(record, path: Path, where, n_options: int) -> str:
    gold = field(record, "answer", str, path, where)
    if not 0 <= mc.letter_index(gold) < n_options:
        raise AnnotationError(str(path), "answer", f"expected an option letter, got {gold!r}", where)
    return gold


def _bucket(record, path: Path, where) -> str:
    duration = field(record, "duration", str, path, where)
    if duration not in DURATIONS:
        raise AnnotationError(str(path), "duration", f"expected one of {DURATIONS}, got {duration!r}", where)
    return duration


def _load_official(path: Path, records: list, rejects: Rejects) -> list[Sample]:
    samples = []
    for i, record in enumerate(records):
        with rejects.guard():
            options = string_list(record, "options", path, i, min_len=2)
            samples.append(Sample(
                id=field(record, "question_id", str, path, i), video=f"{field(record, 'videoID', str, path, i)}.mp4",
                question=field(record, "question", str, path, i), options=options, gold=_letter(record, path, i, len(options)),
                task=field(record, "task_type", str, path, i), category=_bucket(record, path, i),
                group=field(record, "video_id", str, path, i),
                meta={"domain": record.get("domain", ""), "sub_category": record.get("sub_category", "")},
            ))
    return samples


def _load_rekv(path: Path, records: list, rejects: Rejects) -> list[Sample]:
    samples = []
    for v, record, video_id, video, q, conv, where, choices in iter_conversations(path, records, rejects):
        with rejects.guard():
            samples.append(Sample(
                id=f"{video_id}-{q + 1}", video=video, question=field(conv, "question", str, path, where), options=choices,
                gold=_letter(conv, path, where, len(choices)), task=conv.get("task_type", ""),
                category=_bucket(record, path, v), group=video_id, meta={},
            ))
    return samples


def build_query(sample: Sample, cfg: BenchmarkConfig):
    """"rekv" keeps ReKV's rendering, which shows "(A) A. text" for the "A. "-prefixed choices."""
    if cfg.prompt == "rekv":
        return mc_query(sample, cfg, rekv_mc_prompt(sample.question, sample.options), answer_prefix=REKV_PRIMER)
    prompt = TEMPLATES[cfg.prompt].format(question=sample.question, options=mc.render_options(sample.options, "raw_lines"))
    return mc_query(sample, cfg, prompt)


def score_item(pred: dict, cfg: BenchmarkConfig) -> dict:
    response = pred.get("response")
    parsed = mc.letter_before_paren(response) if cfg.scoring == "stc_release" else mc.videomme_letter(response)
    return {"parsed": parsed, "answered": parsed != "", "correct": parsed == pred["gold"]}


def aggregate(scored: Sequence[dict], cfg: BenchmarkConfig) -> dict:
    answered_only = cfg.scoring == "official"
    durations = by_key(scored, lambda p: p["category"], answered_only, order=DURATIONS)
    tables = {"per duration": [{"duration": d, **r} for d, r in durations.items()]}
    if any(p["meta"].get("domain") for p in scored):
        domains = by_key(scored, lambda p: p["meta"].get("domain", ""), answered_only)
        tables["per domain"] = [{"domain": d, **r} for d, r in domains.items()]
    if any(p["task"] for p in scored):
        tables["per task type"] = [{"task_type": t, **r} for t, r in by_key(scored, lambda p: p["task"], answered_only).items()]
    overall = tally(scored, answered_only)
    headline = {f"Overall ({'answered only' if answered_only else 'all items'})": overall["accuracy"]}
    headline.update({d.capitalize(): r["accuracy"] for d, r in durations.items()})
    rule = {"official": "Video-MME extraction; unanswered excluded from denominators (official)",
            "lmms_eval": "Video-MME extraction; unanswered counted wrong (lmms-eval)",
            "stc_release": "character before the first ')' (ReKV/STC release rule); unanswered counted wrong"}[cfg.scoring]
    return {"headline": headline, "tables": tables,
            "notes": [f"scoring={cfg.scoring}: {rule}", f"{overall['unanswered']} unanswered item(s)"]}
