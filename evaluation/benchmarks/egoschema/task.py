"""EgoSchema loader (official `questions.json` + `subset_answers.json`, or ReKV format), ReKV prompt,
letter-before-")" scoring; `submission.csv` for the full set.

Gold answers are option indices. Unlike STC's generic scorer (which looked the int answer up among the
choice texts and silently fell back to "A"), the index is mapped to its letter directly.
Scoring variant: `subset` = accuracy over items that have a gold answer; items without one (full set)
are reported as "no gold" and written to submission.csv (q_uid, answer index; unparsable -> 0, as
ReKV's `eval_egoschema.py` maps invalid letters to A).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

from evaluation.common import mc
from evaluation.common.annotations import Rejects, detect_format, expect_list, field, iter_conversations, read_json
from evaluation.common.metrics import tally
from evaluation.common.prompts import REKV_PRIMER, rekv_mc_prompt
from evaluation.config import BenchmarkConfig
from evaluation.registry import mc_query
from evaluation.types import AnnotationError, Loaded, Sample

SCORINGS = ("subset",)
PROMPTS = ("rekv",)


def load(path: Path, cfg: BenchmarkConfig, root: Path) -> Loaded:
    records = expect_list(read_json(path), path)
    answers = _read_answers(cfg, root)
    fmt = cfg.format if cfg.format != "auto" else detect_format(records)
    rejects = Rejects()
    samples = _load_rekv(path, records, rejects) if fmt == "rekv" else _load_official(path, records, rejects)
    kept = []
    for sample in samples:
        with rejects.guard():
            if sample.meta["q_uid"] in answers:
                sample.gold = _gold(answers[sample.meta["q_uid"]], len(sample.options), cfg.answers, f"q_uid {sample.meta['q_uid']}")
            kept.append(sample)
    return Loaded(kept, rejects)


def _read_answers(cfg: BenchmarkConfig, root: Path) -> dict:
    if not cfg.answers:
        return {}
    path = Path(cfg.answers) if Path(cfg.answers).is_absolute() else root / cfg.answers
    data = read_json(path)
    if not isinstance(data, dict):
        raise AnnotationError(str(path), "<top level>", "expected an object q_uid -> answer index")
    return data


def _gold(answer, n_options: int, path, where) -> str:
    if answer is None:
        return ""
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < n_options:
        raise AnnotationError(str(path), "answer", f"expected an option index 0..{n_options - 1}, got {answer!r}", where)
    return mc.option_letter(answer)


def _load_rekv(path: Path, records: list, rejects: Rejects) -> list[Sample]:
    samples = []
    for _, _, q_uid, video, q, conv, where, choices in iter_conversations(path, records, rejects):
        with rejects.guard():
            samples.append(Sample(
                id=q_uid if q == 0 else f"{q_uid}_{q}", video=video, question=field(conv, "question", str, path, where),
                options=choices, gold=_gold(conv.get("answer"), len(choices), path, where), task="EgoSchema", group=q_uid,
                meta={"q_uid": q_uid, "question_idx": conv.get("question_idx")},
            ))
    return samples


def _load_official(path: Path, records: list, rejects: Rejects) -> list[Sample]:
    samples = []
    for i, record in enumerate(records):
        with rejects.guard():
            q_uid = field(record, "q_uid", str, path, i)
            options = [field(record, f"option {k}", str, path, i) for k in range(5)]
            samples.append(Sample(
                id=q_uid, video=f"{q_uid}.mp4", question=field(record, "question", str, path, i), options=options,
                gold="", task="EgoSchema", group=q_uid, meta={"q_uid": q_uid},
            ))
    return samples


def build_query(sample: Sample, cfg: BenchmarkConfig):
    return mc_query(sample, cfg, rekv_mc_prompt(sample.question, sample.options), answer_prefix=REKV_PRIMER)


def score_item(pred: dict, cfg: BenchmarkConfig) -> dict:
    parsed = mc.letter_before_paren(pred.get("response"))
    return {"parsed": parsed, "answered": parsed != "", "correct": bool(pred["gold"]) and parsed == pred["gold"]}


def aggregate(scored: Sequence[dict], cfg: BenchmarkConfig) -> dict:
    with_gold = [p for p in scored if p["gold"]]
    row = tally(with_gold)
    notes = ["answer = character before the first ')' (ReKV rule), mapped to the option index"]
    no_gold = len(scored) - len(with_gold)
    if no_gold:
        notes.append(f"{no_gold} item(s) have no gold answer (full set): see submission.csv for the server")
    return {"headline": {"Subset accuracy": row["accuracy"] if with_gold else None},
            "tables": {"overall": [{"split": "with gold answers", **row},
                                   {"split": "without gold (submission only)", **tally(p for p in scored if not p["gold"])}]},
            "notes": notes}


def write_submission(scored: Sequence[dict], cfg: BenchmarkConfig, out_dir: Path) -> list[str]:
    """`submission.csv` (q_uid, answer): the predicted index; unparsable answers -> 0 (ReKV maps to A)."""
    path = Path(out_dir) / "submission.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["q_uid", "answer"])
        for p in sorted(scored, key=lambda p: p["id"]):
            index = mc.letter_index(p["parsed"])
            writer.writerow([p["meta"].get("q_uid", p["id"]), index if 0 <= index < 5 else 0])
    return [str(path)]
