"""M-RoPE (temporal, height, width) position indices of LiveCC turns, computed per appended turn.

Qwen2-VL gives text tokens one index on all three axes and the merged tokens of a video (t, h, w)
indices offset by the position where the video starts; text after a video continues at the largest
index so far + 1 (the training-time `get_rope_index` of transformers 4.x). Because each turn starts
with text, a turn appended to a non-empty cache gets exactly the indices a single forward over the
whole history would give if its own indices start at the stream's `next_position` — that is all the
carry-over needs (`tests/frameworks/livecc/test_livecc_stream.py` checks it against one stock forward).

Pruning keeps a subset of a video's merged tokens: their indices are the ORIGINAL (t, h, w) indices
of those tokens (`VideoBlock.select`), and the text after the video still continues after the full
grid, so nothing is ever renumbered.

transformers 5.17's stock `get_rope_index` continues text after a video at start + max(h, w) (it drops
the temporal extent); the two agree whenever t <= max(h, w), which holds for LiveCC's per-second turns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch


@dataclass
class VideoBlock:
    """Merged visual tokens [n, D] of one video in a turn, with their (t, h, w) offsets [3, n] relative to
    the video's start position, and the span (largest offset + 1) the full grid occupies."""

    features: torch.Tensor
    offsets: torch.Tensor
    span: int

    @classmethod
    def full(cls, features: torch.Tensor, groups: int, rows: int, cols: int) -> "VideoBlock":
        """All tokens of a merged grid of `groups` temporal groups x rows x cols (row-major per group)."""
        if features.shape[0] != groups * rows * cols:
            raise ValueError(f"{features.shape[0]} visual tokens do not fill a {groups}x{rows}x{cols} grid")
        device = features.device  # built there: no host->device copy per turn
        t, h, w = torch.meshgrid(torch.arange(groups, device=device), torch.arange(rows, device=device),
                                 torch.arange(cols, device=device), indexing="ij")
        offsets = torch.stack([t, h, w]).reshape(3, -1)
        return cls(features, offsets, max(groups, rows, cols))

    def select(self, flat_indices: torch.Tensor) -> "VideoBlock":
        """Keep tokens at `flat_indices` (into this block, ascending): features and original offsets."""
        flat_indices = flat_indices.to(self.features.device)
        return VideoBlock(self.features[flat_indices], self.offsets[:, flat_indices], self.span)


Piece = Union[Sequence[int], VideoBlock]


@dataclass
class TurnInputs:
    """Ids, positions [3, L] and visual features of one pre-fill call; `next_position` continues after it."""

    ids: list[int]
    positions: torch.Tensor
    visual: Optional[torch.Tensor]
    visual_mask: torch.Tensor
    next_position: int


def assemble(pieces: Sequence[Piece], start: int, video_token_id: int, device: torch.device) -> TurnInputs:
    """Concatenate text ids and video blocks starting at position `start` (M-RoPE layout above)."""
    ids: list[int] = []
    positions, visual, mask = [], [], []
    cursor = start
    for piece in pieces:
        if isinstance(piece, VideoBlock):
            count = piece.features.shape[0]
            ids.extend([video_token_id] * count)
            positions.append(piece.offsets.to(device) + cursor)
            visual.append(piece.features)
            mask.append(torch.ones(count, dtype=torch.bool, device=device))
            cursor += piece.span
        else:
            piece = list(piece)
            positions.append(torch.arange(cursor, cursor + len(piece), device=device).expand(3, -1))
            ids.extend(piece)
            mask.append(torch.zeros(len(piece), dtype=torch.bool, device=device))
            cursor += len(piece)
    return TurnInputs(ids, torch.cat(positions, dim=1), torch.cat(visual) if visual else None,
                      torch.cat(mask), cursor)


def released_positions(count: int, cache_length: int, first_turn_delta: int, device: torch.device) -> torch.Tensor:
    """[3, count] 1-D positions cache_length + i + delta: what transformers-4.x generate gives every turn
    after the first (its rope_deltas are computed on the first turn only), kept behind `mrope=released`."""
    return (torch.arange(count, device=device) + cache_length + first_turn_delta).expand(3, -1)
