"""Accuracy aggregation shared by every benchmark.

A scored item is a dict with at least `correct` (bool), `answered` (bool: an answer could be
extracted), `error` (str | None: the item failed before an answer existed) plus grouping keys.
Denominators include unanswered and errored items; the one exception is `answered_only` (the
Video-MME official rule), which drops unparsable answers but still keeps failed (errored) items.
Every table carries the counts.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterable, Mapping, Sequence


def tally(items: Iterable[Mapping], answered_only: bool = False) -> dict:
    """{'n', 'correct', 'unanswered', 'errors', 'denominator', 'accuracy'} (accuracy in percent)."""
    n = correct = unanswered = errors = unanswered_errors = 0
    for item in items:
        failed = item.get("error") is not None
        n += 1
        correct += bool(item["correct"])
        unanswered += not item["answered"]
        errors += failed
        unanswered_errors += failed and not item["answered"]
    # answered_only drops unparsable answers (Video-MME official); failed items always stay in
    denominator = n - (unanswered - unanswered_errors) if answered_only else n
    accuracy = 100.0 * correct / denominator if denominator else 0.0
    return {"n": n, "correct": correct, "unanswered": unanswered, "errors": errors,
            "denominator": denominator, "accuracy": accuracy}


def by_key(items: Sequence[Mapping], key: Callable[[Mapping], str], answered_only: bool = False,
           order: Sequence[str] = ()) -> "OrderedDict[str, dict]":
    """Tally per group; groups listed in `order` come first (in that order), then the rest sorted."""
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    names = [g for g in order if g in groups] + sorted(g for g in groups if g not in order)
    return OrderedDict((g, tally(groups[g], answered_only)) for g in names)


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0
