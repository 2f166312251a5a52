"""Pure tensor functions of STC-Cacher: score tokens against the reference, pick the dynamic ones.

No state, no model: each function takes tensors and returns tensors. Every metric is oriented so
that LOWER means "more changed since the reference frame" (upstream convention), and the k lowest
are recomputed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def prepare_reference(reference: torch.Tensor, metric: str) -> torch.Tensor:
    """The form in which a reference frame's features are stored for `metric`: unit vectors for
    "cosine" (so a selective frame needs one dot product and one norm per token), raw otherwise."""
    if metric == "cosine":
        return F.normalize(reference, dim=-1)
    if metric in ("dot", "l1", "l2"):
        return reference
    raise ValueError(f"unknown similarity metric {metric!r}; expected cosine, dot, l1 or l2")


def token_similarity(features: torch.Tensor, reference: torch.Tensor, metric: str = "cosine") -> torch.Tensor:
    """Per-token similarity of fresh features to the reference frame's features.

    Args:
        features: [B, T, D] fresh features of the current frames (keys by default).
        reference: [B, T, D] or [T, D], token-aligned, as returned by `prepare_reference`.
        metric: "cosine", "dot", "l1" (negated L1 distance) or "l2" (negated L2 distance).
    Returns:
        [B, T] scores in the features' dtype (upstream also ranks in half precision); lower = less
        similar = more dynamic.
    """
    if metric == "cosine":
        return torch.linalg.vecdot(features, reference) / features.norm(dim=-1).clamp_min(1e-6)
    if metric == "dot":
        return torch.linalg.vecdot(features, reference)
    if metric == "l1":
        return -(features - reference).abs().sum(-1)
    if metric == "l2":
        return -torch.linalg.vector_norm(features - reference, dim=-1)
    raise ValueError(f"unknown similarity metric {metric!r}; expected cosine, dot, l1 or l2")


def select_dynamic_tokens(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k lowest-scoring (most changed) tokens per row.

    Args:
        scores: [B, T] similarity scores (lower = more dynamic).
        k: number of tokens to recompute, 1 <= k <= T.
    Returns:
        [B, k] int64 indices in no particular order: the layer math is per token, so the order does
        not change any result, and skipping a sort saves a kernel per layer on the hot path.
    """
    if not 1 <= k <= scores.shape[-1]:
        raise ValueError(f"k={k} tokens to recompute must be in [1, {scores.shape[-1]}]")
    return torch.topk(scores, k, dim=-1, largest=False, sorted=False).indices


def expand_index(indices: torch.Tensor, width: int) -> torch.Tensor:
    """[B, k] token indices -> [B, k, width] index for torch.gather / Tensor.scatter_ along dim 1.
    Built once per layer and shared by all gathers and scatters of that layer."""
    return indices.unsqueeze(-1).expand(-1, -1, width)
