"""Reading annotation files with errors that name the file, the record (1-based) and the field.

Two kinds of failure, on purpose: a file that is not JSON or has the wrong top-level shape stops the run
(nothing sensible can be evaluated), while a bad field inside one record only rejects that record
(`Rejects.guard`): real annotation files carry irregular records that the benchmark authors' own code
skips or tolerates, and one of them must never cost a multi-hour run. The report counts the rejects.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any, Mapping

from evaluation.types import AnnotationError, Rejected, location


MISSING_ANNOTATION = "annotation file not found (check data.root / benchmark.annotation)"


def read_json(path: str | Path, missing: str = MISSING_ANNOTATION) -> Any:
    """Parse a JSON file; a missing file or bad JSON raises one AnnotationError naming the file.
    `missing` is the hint for a missing file (the re-scoring CLI has no data.root)."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(str(path), "<file>", missing)
    try:
        with path.open("r", encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise AnnotationError(str(path), "<file>", f"invalid JSON: {err}") from None


def expect_list(data: Any, path: str | Path) -> list:
    if not isinstance(data, list):
        raise AnnotationError(str(path), "<top level>", f"expected a JSON list, got {type(data).__name__}")
    return data


def field(record: Any, name: str, kind: type | tuple[type, ...], path: str | Path, index: int | str, optional: bool = False):
    """Return record[name] checked against `kind`; raise AnnotationError naming file, record and field."""
    if not isinstance(record, Mapping):
        raise AnnotationError(str(path), "<record>", f"expected an object, got {type(record).__name__}", index)
    if name not in record or record[name] is None:
        if optional:
            return None
        raise AnnotationError(str(path), name, "missing", index)
    value = record[name]
    # bool is an int subclass; never accept it where a number is meant
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        names = "/".join(k.__name__ for k in _as_tuple(kind))
        raise AnnotationError(str(path), name, f"expected {names}, got {type(value).__name__} {value!r}", index)
    if isinstance(value, float) and not math.isfinite(value):  # NaN/inf from pandas or hand-edited JSON
        raise AnnotationError(str(path), name, f"expected a finite number, got {value!r}", index)
    return value


def string_list(record: Any, name: str, path: str | Path, index: int | str, min_len: int = 1) -> list[str]:
    values = field(record, name, list, path, index)
    if len(values) < min_len or not all(isinstance(v, str) for v in values):
        raise AnnotationError(str(path), name, f"expected a list of >= {min_len} strings, got {values!r}", index)
    return values


def detect_format(records: list) -> str:
    """"rekv" when the first object record has `conversations` (ReKV/STC-converted), else "official"."""
    first = next((r for r in records if isinstance(r, Mapping)), {})
    return "rekv" if "conversations" in first else "official"


def _as_tuple(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


NUMBER = (int, float)


class Rejects(list):
    """The records a loader rejected (`Rejected` entries), in file order."""

    @contextlib.contextmanager
    def guard(self):
        """Run one record's parsing; an AnnotationError rejects that record and parsing goes on."""
        try:
            yield
        except AnnotationError as err:
            self.append(Rejected.from_error(err))


def iter_conversations(path: str | Path, records: list, rejects: Rejects):
    """The ReKV/STC-converted offline format (MLVU, EgoSchema, VideoMME): records
    {video_id, video_path, conversations: [{question, choices, answer, ...}]}.
    Yields (record index, record, video_id, video_path, question index, conversation, where, choices)
    with every shared field already checked; a record or conversation that fails a check is added to
    `rejects` and skipped (the caller must still guard the fields it reads itself)."""
    for v, record in enumerate(records):
        conversations = None
        with rejects.guard():
            video_id = field(record, "video_id", str, path, v)
            video = field(record, "video_path", str, path, v)
            conversations = field(record, "conversations", list, path, v)
        if conversations is not None:
            for q, conv in enumerate(conversations):
                where = location(v, "question", q)
                with rejects.guard():
                    choices = string_list(conv, "choices", path, where, min_len=2)
                    yield v, record, video_id, video, q, conv, where, choices
