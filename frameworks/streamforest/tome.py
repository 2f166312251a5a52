"""Token merging (ToMe bipartite soft matching with size-weighted averages), as StreamForest uses it.

StreamForest compresses frames and events with ToMe rather than pooling: tokens are split into two
alternating sets A (even positions) and B (odd positions); every A token is matched to its most
similar B token (cosine of a head-averaged metric), and the `r` best-matched A tokens are averaged
into their B partners, weighted by how many original tokens each one already stands for. A target
count is reached by repeated halving (`merge_schedule`): 729 -> 128 is 364, 182, 55 merges.

Output order is the released one: the unmerged A tokens (in order of decreasing match score), then all
B tokens in their original order. The LLM sees tokens in this order, so it is kept exactly.
"""

from __future__ import annotations

import torch


def merge_schedule(tokens: int, target: int) -> list[int]:
    """Merges per round to go from `tokens` to `target` (at most half of the tokens per round)."""
    if target > tokens:
        raise ValueError(f"cannot merge {tokens} tokens up to {target}")
    rounds = []
    while tokens != target:
        if tokens - target <= tokens // 2:
            rounds.append(tokens - target)
            break
        rounds.append(tokens // 2)
        tokens -= tokens // 2
    return rounds


def head_mean(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, T, C] -> [B, T, C / heads]: the channel groups of the attention heads averaged (the metric)."""
    batch, tokens, channels = x.shape
    return x.reshape(batch, tokens, heads, channels // heads).mean(2)


def _match(metric: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bipartite matching on [B, T, c]: (unmerged A rows, merged A rows, their B partners), each [B, n, 1]."""
    metric = metric / metric.norm(dim=-1, keepdim=True)
    scores = metric[:, ::2] @ metric[:, 1::2].transpose(-1, -2)
    best, partner = scores.amax(dim=-1), scores.argmax(dim=-1)  # = max(dim=-1); much faster on small CPU tensors
    order = best.argsort(dim=-1, descending=True)[..., None]
    merged = order[:, :r]
    return order[:, r:], merged, partner[..., None].gather(1, merged)


def merge_round(x: torch.Tensor, size: torch.Tensor, r: int, heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One ToMe round on [B, T, C] with token sizes [B, T, 1]: T -> T - r tokens (size-weighted mean)."""
    r = min(r, x.shape[1] // 2)
    if r <= 0:
        return x, size
    with torch.no_grad():
        keep, merged, partner = _match(head_mean(x, heads), r)

    def combine(values: torch.Tensor) -> torch.Tensor:
        a, b = values[:, ::2], values[:, 1::2]
        width = values.shape[-1]
        kept = a.gather(1, keep.expand(-1, -1, width))
        moved = a.gather(1, merged.expand(-1, -1, width))
        return torch.cat([kept, b.scatter_add(1, partner.expand(-1, -1, width), moved)], dim=1)

    total = combine(x * size)
    size = combine(size)
    return total / size, size


def merge_tokens(x: torch.Tensor, target: int, heads: int) -> torch.Tensor:
    """[B, T, C] -> [B, target, C] by repeated ToMe rounds (no-op when T == target)."""
    size = torch.ones_like(x[..., :1])
    for r in merge_schedule(x.shape[1], target):
        x, size = merge_round(x, size, r, heads)
    return x


def pair_similarity(first: torch.Tensor, second: torch.Tensor, target: int, heads: int) -> float:
    """How well two adjacent events would merge: the mean of the `r` best A->B match scores of their
    concatenated tokens, r = total - target (the merges a consolidation would make)."""
    joined = torch.cat([first.reshape(-1, first.shape[-1]), second.reshape(-1, second.shape[-1])])
    r = joined.shape[0] - target
    if not 0 < r <= joined.shape[0] // 2:
        raise ValueError(f"event pair of {joined.shape[0]} tokens cannot be merged to {target}")
    with torch.no_grad():
        metric = head_mean(joined[None], heads)[0]
        metric = metric / metric.norm(dim=-1, keepdim=True)
        best = (metric[::2] @ metric[1::2].T).amax(dim=-1)
        return float(best.topk(r).values.mean())
