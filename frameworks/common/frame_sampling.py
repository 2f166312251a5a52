"""Which frames of a buffer a host keeps when it may take only so many (StreamForest's `max_frames`,
LiveCC's `clip_max_frames`): uniformly spread, first and last included, as numpy.linspace(...).round()
(qwen-vl-utils' rule)."""

from __future__ import annotations

import torch


def uniform_indices(count: int, keep: int) -> list[int]:
    """At most `keep` of range(count), uniformly spread (all of them when count <= keep)."""
    if count <= keep:
        return list(range(count))
    return torch.linspace(0, count - 1, keep).round().long().tolist()
