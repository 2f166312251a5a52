"""Typed items shared by loaders, the runner and the scorers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence


@dataclass
class Sample:
    """One scored question put to a host.

    Attributes:
        id: unique id inside the benchmark (string; OVO forward probes are "<record id>_<probe index>").
        video: video path as written in the annotation (resolved against data.root by the runner).
        question: bare question text (also used as retrieval text by ReKV-style hosts).
        options: option texts in display order (may carry "A. " prefixes when the source file does).
        gold: gold answer in the scorer's vocabulary (a letter, "Yes"/"No", a count as a string, or
            "" when the split hides answers, e.g. the EgoSchema full set).
        task: the finest breakdown (OVO task, StreamingBench task_type, MLVU question_type, ...).
        category: the coarser breakdown (OVO category, VideoMME duration bucket, ...); "" when none.
        query_time: seconds; the model sees [start_time, query_time]. None = the whole video.
        start_time: seconds where the visible window starts (0 for every official protocol).
        group: id of the annotation record the sample came from (OVO forward: all probes of a record).
        precut: file name of an upstream pre-cut prefix clip, when one exists (OVO `{id}.mp4`).
        meta: benchmark-specific extras carried into predictions (domain, probe type, ...).
    """

    id: str
    video: str
    question: str
    options: Sequence[str]
    gold: str
    task: str
    category: str = ""
    query_time: Optional[float] = None
    start_time: float = 0.0
    group: str = ""
    precut: Optional[str] = None
    meta: dict[str, Any] = field(default_factory=dict)


class AnnotationError(ValueError):
    """A malformed annotation; the message names the file, the record (1-based) and the field.

    `record` is a 0-based int index (shown 1-based, as an editor shows it) or an already formatted
    location such as "record 3, question 2". Raised per record, it is caught by the loaders and turned
    into a `Rejected` entry; raised for the whole file (not JSON, wrong top-level shape) it stops the run.
    """

    def __init__(self, path: str, field_name: str, problem: str, record: Optional[int | str] = None):
        where = "" if record is None else f" ({record_label(record)})"
        super().__init__(f"{path}{where}: field {field_name!r}: {problem}")
        self.path, self.field_name, self.record, self.problem = path, field_name, record, problem

    @property
    def reason(self) -> str:
        """The problem without the offending value, so the report can group records by it."""
        short = re.split(r",? got |: ", self.problem, maxsplit=1)[0]
        return f"field {self.field_name!r}: {short}"


def record_label(record: int | str) -> str:
    """0-based index -> "record N" (1-based); strings pass through."""
    return f"record {record + 1}" if isinstance(record, int) else str(record)


def location(index: int, part: str = "", sub: Optional[int] = None) -> str:
    """Human location of a nested item, 1-based: location(4, "question", 1) -> "record 5, question 2"."""
    return record_label(index) + (f", {part} {sub + 1}" if part else "")


@dataclass(frozen=True)
class Rejected:
    """One annotation record (or one question of it) that could not be read; reported, never fatal."""

    path: str
    where: str
    reason: str
    message: str

    @classmethod
    def from_error(cls, err: AnnotationError) -> "Rejected":
        where = "" if err.record is None else record_label(err.record)
        return cls(path=err.path, where=where, reason=err.reason, message=str(err))


@dataclass
class Loaded:
    """What a loader returns: the samples it could build and the records it had to reject."""

    samples: list
    rejected: list = field(default_factory=list)


class VideoError(RuntimeError):
    """A video that cannot be read; the runner records it per item and the report counts it."""
