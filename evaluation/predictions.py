"""predictions.jsonl: one JSON object per answered (or failed) item, appended as produced.

Resuming reads the ids already present and skips them, so a restarted command never duplicates work.
A run killed mid-write can leave a truncated last line; `open_for_append` cuts it off before appending
and `read_predictions` ignores it. A broken line anywhere else is an error naming file and line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any, Iterable


def shard_file_name(index: int, total: int) -> str:
    return "predictions.jsonl" if total == 1 else f"predictions.shard-{index}-of-{total}.jsonl"


def read_predictions(path: str | Path) -> list[dict]:
    """Records in file order, first occurrence of each id kept; a missing file reads as empty."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    records, seen = [], set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):  # truncated final line of a killed run
                break
            raise ValueError(f"{path}: line {number}: not valid JSON ({err})") from None
        if not isinstance(record, dict) or "id" not in record:
            raise ValueError(f"{path}: line {number}: expected an object with an 'id' field")
        if record["id"] not in seen:
            seen.add(record["id"])
            records.append(record)
    return records


def open_for_append(path: str | Path) -> IO[str]:
    """Open for appending after dropping a truncated trailing line left by a killed run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            path.write_bytes(data[: data.rfind(b"\n") + 1])
    return path.open("a", encoding="utf-8")


def append(handle: IO[str], record: dict[str, Any]) -> None:
    handle.write(json.dumps(record, ensure_ascii=False, default=_jsonable) + "\n")
    handle.flush()


def write_all(path: str | Path, records: Iterable[dict]) -> None:
    with Path(path).open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
