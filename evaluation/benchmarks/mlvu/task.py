"""MLVU dev multiple-choice: loader (official per-task JSON or ReKV `dev_debug_mc.json`), ReKV prompt,
letter-before-")" scoring.

Scoring variants (`benchmark.scoring`):
  stc_release : accuracy over all questions (ReKV/STC release `eval_multiple_choice.py`; also lmms-eval).
  official    : mean of the 7 per-type accuracies (the MLVU benchmark's "M-Avg").
Both numbers are always printed; the variant picks the headline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from evaluation.common import mc
from evaluation.common.annotations import NUMBER, Rejects, detect_format, expect_list, field, iter_conversations, read_json, string_list
from evaluation.common.metrics import by_key, mean, tally
from evaluation.common.prompts import REKV_PRIMER, rekv_mc_prompt
from evaluation.config import BenchmarkConfig
from evaluation.registry import mc_query
from evaluation.types import AnnotationError, Loaded, Sample

SCORINGS = ("stc_release", "official")
PROMPTS = ("rekv",)
TYPE_FOLDERS = {"plotQA": "1_plotQA", "findNeedle": "2_needle", "ego": "3_ego", "count": "4_count",
                "order": "5_order", "anomaly_reco": "6_anomaly_reco", "topic_reasoning": "7_topic_reasoning"}


def load(path: Path, cfg: BenchmarkConfig, root: Path) -> Loaded:
    """A ReKV-format list, an official per-task list, or a folder of official per-task JSON files.
    A bad record (or conversation) is rejected and counted; the rest load."""
    rejects = Rejects()
    if path.is_dir():
        samples = []
        for file in sorted(path.glob("*.json")):
            samples.extend(_load_official(file, expect_list(read_json(file), file), rejects))
        if not samples and not rejects:
            raise AnnotationError(str(path), "<folder>", "no *.json annotation files found")
        return Loaded(samples, rejects)
    records = expect_list(read_json(path), path)
    fmt = cfg.format if cfg.format != "auto" else detect_format(records)
    samples = _load_rekv(path, records, rejects) if fmt == "rekv" else _load_official(path, records, rejects)
    return Loaded(samples, rejects)


def _gold_letter(choices: list[str], answer: str, path: Path, where) -> str:
    if answer not in choices:
        raise AnnotationError(str(path), "answer", f"not one of the choices, got {answer!r} (choices {choices})", where)
    return mc.option_letter(choices.index(answer))


def _load_rekv(path: Path, records: list, rejects: Rejects) -> list[Sample]:
    samples = []
    for v, record, video_id, video, q, conv, where, choices in iter_conversations(path, records, rejects):
        with rejects.guard():
            samples.append(Sample(
                id=f"{video_id}_{q}", video=video, question=field(conv, "question", str, path, where), options=choices,
                gold=_gold_letter(choices, field(conv, "answer", str, path, where), path, where),
                task=field(conv, "question_type", str, path, where), group=video_id,
                meta={"duration": field(record, "duration", NUMBER, path, v, optional=True)},
            ))
    return samples


def _load_official(path: Path, records: list, rejects: Rejects) -> list[Sample]:
    samples = []
    for i, record in enumerate(records):
        with rejects.guard():
            qtype = field(record, "question_type", str, path, i)
            choices = string_list(record, "candidates", path, i, min_len=2)
            name = field(record, "video", str, path, i)
            samples.append(Sample(
                id=f"{qtype}_{i}", video=f"{TYPE_FOLDERS.get(qtype, qtype)}/{name}",
                question=field(record, "question", str, path, i), options=choices,
                gold=_gold_letter(choices, field(record, "answer", str, path, i), path, i), task=qtype, group=name,
                meta={"duration": record.get("duration")},
            ))
    return samples


def build_query(sample: Sample, cfg: BenchmarkConfig):
    return mc_query(sample, cfg, rekv_mc_prompt(sample.question, sample.options), answer_prefix=REKV_PRIMER)


def score_item(pred: dict, cfg: BenchmarkConfig) -> dict:
    parsed = mc.letter_before_paren(pred.get("response"))
    return {"parsed": parsed, "answered": parsed != "", "correct": parsed == pred["gold"]}


def aggregate(scored: Sequence[dict], cfg: BenchmarkConfig) -> dict:
    per_type = by_key(scored, lambda p: p["task"], order=tuple(TYPE_FOLDERS))
    micro = tally(scored)["accuracy"]
    m_avg = mean(row["accuracy"] for row in per_type.values())
    headline = {"M-Avg (mean of types)": m_avg, "Overall (micro)": micro}
    if cfg.scoring == "stc_release":
        headline = {"Overall (micro)": micro, "M-Avg (mean of types)": m_avg}
    return {"headline": headline, "tables": {"per question type": [{"question_type": t, **r} for t, r in per_type.items()]},
            "notes": [f"scoring={cfg.scoring}; answer = character before the first ')' (ReKV rule)"]}
