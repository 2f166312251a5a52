"""Which benchmark a results file belongs to, from its shape alone.

Why: every benchmark's scorer accepts any list of predictions, so re-scoring an OVO-Bench file with
`benchmark=streamingbench` used to print a confident wrong table and exit 0. `evaluation.score` calls
`check_benchmark` first and refuses a mismatch with one line naming what the file looks like.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Optional, Sequence


def _vocabulary() -> dict[str, set]:
    from evaluation.benchmarks.mlvu.task import TYPE_FOLDERS
    from evaluation.benchmarks.ovobench.task import TASK_CATEGORY
    from evaluation.benchmarks.streamingbench.task import TASK_ABBREV

    return {"ovobench": set(TASK_CATEGORY), "streamingbench": set(TASK_ABBREV), "mlvu": set(TYPE_FOLDERS),
            "egoschema": {"EgoSchema"}}


def from_predictions(predictions: Sequence[dict]) -> Optional[str]:
    """Majority vote over the records' task names (Video-MME: its duration buckets)."""
    vocab = _vocabulary()
    votes: Counter = Counter()
    for pred in predictions:
        task = pred.get("task")
        hits = [name for name, tasks in vocab.items() if task in tasks]
        if not hits and pred.get("category") in ("short", "medium", "long"):
            hits = ["videomme"]
        votes.update(hits)
    return votes.most_common(1)[0][0] if votes else None


def from_upstream(data: Any) -> Optional[str]:
    """Upstream result layouts: OVO-Bench {"backward", "realtime", "forward"}; StreamingBench a list of
    {video_path, questions}; a list of {conversations} is the ReKV offline format (no result layout)."""
    if isinstance(data, dict) and {"backward", "realtime", "forward"} & set(data):
        return "ovobench"
    if isinstance(data, list):
        first = next((r for r in data if isinstance(r, dict)), {})
        if "questions" in first:
            return "streamingbench"
        if "task" in first and ("test_info" in first or "realtime" in first):
            return "ovobench"
    return None


def check_benchmark(requested: str, detected: Optional[str], path: Path) -> None:
    if detected is not None and detected != requested:
        raise ValueError(f"{path}: looks like a {detected} results file, not {requested} "
                         f"(scoring it with {requested}'s rules would be meaningless); pass benchmark={detected}")
