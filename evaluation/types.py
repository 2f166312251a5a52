"""Typed items shared by loaders, the runner and the scorers."""

from __future__ import annotations

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
    """A malformed annotation file; the message names the file, the record and the field."""

    def __init__(self, path: str, field_name: str, problem: str, record: Optional[int | str] = None):
        where = f" (record {record})" if record is not None else ""
        super().__init__(f"{path}{where}: field {field_name!r}: {problem}")
        self.path, self.field_name, self.record = path, field_name, record


class VideoError(RuntimeError):
    """A video that cannot be read; the runner records it per item and the report counts it."""
