"""Pure scoring functions of STC-Pruner. Shapes: F frames, T tokens per frame, D channels.

Both scores are causal: frame f only sees the stream history and frames <= f of the current call.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def window_means(history: torch.Tensor, new: torch.Tensor, window: int, include_current: bool) -> torch.Tensor:
    """Mean of the last `window` entries of the sequence history ++ new, as seen by each new entry.

    Args:
        history: [H, C] entries from earlier calls (oldest first), H may be 0.
        new: [F, C] entries of this call, in order.
        window: W >= 1, entries averaged at most.
        include_current: entry f's own value is part of its window (released "gaussian" TCA) or not
            (paper FIFO of *past* frames). Without it, an entry with no predecessor gets its own value.
    Returns:
        [F, C] float32 window means.
    """
    entries = torch.cat([history.float(), new.float()], dim=0)
    sums = F.pad(entries.cumsum(0), (0, 0, 1, 0))  # sums[i] = sum of entries[:i]
    positions = torch.arange(history.shape[0], entries.shape[0], device=new.device)
    end = positions + 1 if include_current else positions
    end = torch.where(end == 0, torch.ones_like(end), end)  # no predecessor: use the entry itself
    start = (end - window).clamp(min=0)
    return (sums[end] - sums[start]) / (end - start).unsqueeze(-1).to(sums.dtype)


def multi_gaussian_similarity(tokens: torch.Tensor, anchors: torch.Tensor, bandwidths: Sequence[float]) -> torch.Tensor:
    """sum_b exp(-||u - a||^2 / (2 b)) for tokens [F, T, C] against one anchor per frame [F, C] -> [F, T]."""
    squared = (tokens - anchors.unsqueeze(1)).pow(2).sum(-1)
    return sum(torch.exp(-squared / (2.0 * b)) for b in bandwidths)


def gaussian_scores(scoring: torch.Tensor, memory: torch.Tensor, bandwidths: Sequence[float]) -> torch.Tensor:
    """Released STC-Pruner score (stc-method.md §3.2); LOWER = more novel.

    Args:
        scoring: [F, T, C] tokens in the stream's fixed scoring channels.
        memory: [F, C] temporal memory mean per frame (un-normalised).
    """
    unit = F.normalize(scoring.float(), dim=-1)
    spatial_anchor = unit.mean(1)  # mean of normalised tokens, not re-normalised (as released)
    temporal_anchor = F.normalize(memory, dim=-1)
    return multi_gaussian_similarity(unit, spatial_anchor, bandwidths) + multi_gaussian_similarity(
        unit, temporal_anchor, bandwidths
    )


def dual_anchor_scores(tokens: torch.Tensor, temporal: torch.Tensor, alpha: float) -> torch.Tensor:
    """Paper novelty alpha·(1 - cos(z, a_temporal)) + (1 - alpha)·(1 - cos(z, a_spatial)); HIGHER = more novel.

    Args:
        tokens: [F, T, D] frame tokens.
        temporal: [F, D] temporal anchor per frame (mean of past spatial anchors).
    """
    tokens = tokens.float()
    spatial = F.normalize(tokens.mean(1), dim=-1)
    unit = F.normalize(tokens, dim=-1)
    cos_spatial = (unit * spatial.unsqueeze(1)).sum(-1)
    cos_temporal = (unit * F.normalize(temporal, dim=-1).unsqueeze(1)).sum(-1)
    return alpha * (1.0 - cos_temporal) + (1.0 - alpha) * (1.0 - cos_spatial)
