"""Pure tensor functions of STC-Cacher: score tokens against the reference, pick the dynamic ones.

No state, no model: each function takes tensors and returns tensors. Every metric is oriented so
that LOWER means "more changed since the reference frame" (upstream convention), and the k lowest
are recomputed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_similarity(features: torch.Tensor, reference: torch.Tensor, metric: str = "cosine") -> torch.Tensor:
    """Per-token similarity of fresh features to the reference frame's features.

    Args:
        features: [B, T, D] fresh features of the current frames (keys by default).
        reference: [B, T, D] or [T, D] the reference frame's features, token-aligned.
        metric: "cosine", "dot", "l1" (negated L1 distance) or "l2" (negated L2 distance).
    Returns:
        [B, T] float32 scores; lower = less similar = more dynamic.
    """
    features = features.float()
    reference = reference.float()
    if metric == "cosine":
        return F.cosine_similarity(features, reference, dim=-1)
    if metric == "dot":
        return (features * reference).sum(-1)
    if metric == "l1":
        return -(features - reference).abs().sum(-1)
    if metric == "l2":
        return -(features - reference).pow(2).sum(-1).sqrt()
    raise ValueError(f"unknown similarity metric {metric!r}; expected cosine, dot, l1 or l2")


def select_dynamic_tokens(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k lowest-scoring (most changed) tokens per row.

    Args:
        scores: [B, T] similarity scores (lower = more dynamic).
        k: number of tokens to recompute, 1 <= k <= T.
    Returns:
        [B, k] int64 indices in ascending order (sorted indices make the gathers/scatters coalesced
        and the selection deterministic to inspect; the layer math does not depend on the order).
    """
    if not 1 <= k <= scores.shape[-1]:
        raise ValueError(f"k={k} tokens to recompute must be in [1, {scores.shape[-1]}]")
    indices = torch.topk(scores, k, dim=-1, largest=False, sorted=False).indices
    return torch.sort(indices, dim=-1).values


def expand_index(indices: torch.Tensor, width: int) -> torch.Tensor:
    """[B, k] token indices -> [B, k, width] index for torch.gather / Tensor.scatter_ along dim 1.
    Built once per layer and shared by all gathers and scatters of that layer."""
    return indices.unsqueeze(-1).expand(-1, -1, width)
