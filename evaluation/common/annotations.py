"""Reading annotation JSON with errors that name the file, the record and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from evaluation.types import AnnotationError


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing file or bad JSON raises one AnnotationError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(str(path), "<file>", "annotation file not found (check data.root / benchmark.annotation)")
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
    return value


def string_list(record: Any, name: str, path: str | Path, index: int | str, min_len: int = 1) -> list[str]:
    values = field(record, name, list, path, index)
    if len(values) < min_len or not all(isinstance(v, str) for v in values):
        raise AnnotationError(str(path), name, f"expected a list of >= {min_len} strings, got {values!r}", index)
    return values


def _as_tuple(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


NUMBER = (int, float)


def iter_conversations(path: str | Path, records: list):
    """The ReKV/STC-converted offline format (MLVU, EgoSchema, VideoMME): records
    {video_id, video_path, conversations: [{question, choices, answer, ...}]}.
    Yields (record index, record, video_id, video_path, question index, conversation, where, choices)
    with every shared field already checked (one AnnotationError naming file and field otherwise)."""
    for v, record in enumerate(records):
        video_id = field(record, "video_id", str, path, v)
        video = field(record, "video_path", str, path, v)
        for q, conv in enumerate(field(record, "conversations", list, path, v)):
            where = f"{v}.conversations[{q}]"
            yield v, record, video_id, video, q, conv, where, string_list(conv, "choices", path, where, min_len=2)
