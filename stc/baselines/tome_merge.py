"""ToMe's bipartite soft matching and size-weighted merging (Bolya et al., ICLR 2023), torch only.

    merge = bipartite_soft_matching(metric, r, protect_first=False)
    x, size = merge_weighted(merge, x, size)      # size-weighted average, sizes add up

Released rule (facebookresearch/ToMe `tome/merge.py`): tokens alternate into set A (even positions) and
set B (odd); every A token's best B partner by cosine of the metric (head-averaged keys); the r A tokens
with the strongest edges are merged into their partners (scatter-reduce); output = [unmerged A ; B].
A protected first token (CLS) never merges, and then the unmerged A tokens are re-sorted so it stays first.
"""

from __future__ import annotations

from typing import Callable

import torch

Merge = Callable[[torch.Tensor, str], torch.Tensor]


def bipartite_soft_matching(metric: torch.Tensor, r: int, protect_first: bool = False) -> Merge:
    """metric [B, N, C] -> merge(x [B, N, ...], mode) -> [B, N - r, ...]; r capped at (N - protected) // 2."""
    protected = int(protect_first)
    r = min(r, (metric.shape[1] - protected) // 2)
    if r <= 0:
        return lambda x, mode="mean": x
    with torch.no_grad():
        metric = metric / metric.norm(dim=-1, keepdim=True)
        a, b = metric[:, ::2], metric[:, 1::2]
        scores = a @ b.transpose(-1, -2)
        if protect_first:
            scores[:, 0, :] = -torch.inf
        node_max, node_idx = scores.max(dim=-1)
        edge_idx = node_max.argsort(dim=-1, descending=True)[..., None]
        unmerged_idx, source_idx = edge_idx[:, r:], edge_idx[:, :r]
        target_idx = node_idx[..., None].gather(dim=1, index=source_idx)
        if protect_first:
            unmerged_idx = unmerged_idx.sort(dim=1).values

    def merge(x: torch.Tensor, mode: str = "mean") -> torch.Tensor:
        squeeze = x.ndim == 2
        if squeeze:
            x = x[..., None]
        src, dst = x[:, ::2], x[:, 1::2]
        channels = x.shape[-1]
        unmerged = src.gather(1, unmerged_idx.expand(-1, -1, channels))
        moved = src.gather(1, source_idx.expand(-1, -1, channels))
        dst = dst.scatter_reduce(1, target_idx.expand(-1, -1, channels), moved, reduce=mode)
        out = torch.cat([unmerged, dst], dim=1)
        return out[..., 0] if squeeze else out

    return merge


def merge_weighted(merge: Merge, x: torch.Tensor, size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Size-weighted average: x [B, N, D], size [B, N, 1] -> merged x and summed sizes."""
    x = merge(x * size, "sum")
    size = merge(size, "sum")
    return x / size, size


def merge_schedule(tokens: int, target: int, layers: int, protected: int = 0) -> list[int]:
    """r per layer taking `tokens` to exactly `target` after `layers` layers: a constant r (ToMe's default),
    r = ceil((tokens - target) / layers), capped so no layer overshoots the target (so the last layers
    merge less) and raised where needed so the remaining layers can still reach it (each layer merges at
    most (n - protected) // 2). 729 -> 49 in 26 layers: 27 x 25, then 5.
    ValueError when even halving at every layer cannot reach the target."""

    def reachable(n: int, left: int) -> int:
        for _ in range(left):
            n -= (n - protected) // 2
        return n

    if reachable(tokens, layers) > target:
        raise ValueError(f"{layers} layers can merge {tokens} tokens down to {reachable(tokens, layers)} at best, "
                         f"not {target}")
    schedule, n = [], tokens
    constant = -(-(tokens - target) // layers) if layers else 0
    for layer in range(layers):
        left = layers - layer
        cap = min((n - protected) // 2, n - target)
        r = min(cap, constant)
        while r < cap and reachable(n - r, left - 1) > target:
            r += 1
        schedule.append(r)
        n -= r
    return schedule
