"""FLOP model of STC-Cacher (stc-method.md §2.8): what fraction of the dense ViT work remains.

Counts per layer and frame, multiply-add = 2 FLOPs; LN, softmax, similarity, top-k and gathers are
ignored (they are memory-bound). Used by the speed harness to print theory beside measurements.
"""

from __future__ import annotations


def selective_fraction(update_ratio: float, width: int, mlp_width: int, num_tokens: int) -> float:
    """f_sel(r) = [2d² + r·(6d² + 4Td + 4dm)] / [8d² + 4Td + 4dm] for one selective frame."""
    d, m, t = width, mlp_width, num_tokens
    shared = 6 * d * d + 4 * t * d + 4 * d * m
    return (2 * d * d + update_ratio * shared) / (8 * d * d + 4 * t * d + 4 * d * m)


def cacher_flop_fraction(cache_interval: int, update_ratio: float, width: int, mlp_width: int, num_tokens: int) -> float:
    """F(N, r) = [1 + (N-1)·f_sel(r)] / N: average fraction over one reference + N-1 selective frames."""
    f_sel = selective_fraction(update_ratio, width, mlp_width, num_tokens)
    return (1 + (cache_interval - 1) * f_sel) / cache_interval
