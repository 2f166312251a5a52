"""FLOP model of STC-Cacher (stc-method.md §2.8): what fraction of the dense ViT work remains.

Counts per layer and frame, multiply-add = 2 FLOPs; LN, softmax, similarity, top-k and gathers are
ignored (they are memory-bound). The single source of these formulas: the speed harness prints them
beside its measurements through `speed_benchmark.flops`.
"""

from __future__ import annotations


def vit_layer_flops(width: int, mlp_width: int, num_tokens: int, recomputed: float | None = None) -> float:
    """One pre-LN ViT layer on one frame of T tokens.

    Dense (recomputed=None): T·(8d² + 4Td + 4dm) — QKV 6d², out-proj 2d², QKᵀ+AV 4Td, MLP 4dm.
    Selective (recomputed=k): T·2d² (fresh keys for all tokens) + k·(6d² + 4Td + 4dm) (queries,
    values, out-proj, k queries over T keys, MLP for the k recomputed tokens).
    """
    d, m, t = width, mlp_width, num_tokens
    per_token = 6 * d * d + 4 * t * d + 4 * d * m
    if recomputed is None:
        return t * (2 * d * d + per_token)
    return t * 2 * d * d + recomputed * per_token


def selective_fraction(update_ratio: float, width: int, mlp_width: int, num_tokens: int) -> float:
    """f_sel(r) = [2d² + r·(6d² + 4Td + 4dm)] / [8d² + 4Td + 4dm] for one selective frame."""
    selective = vit_layer_flops(width, mlp_width, num_tokens, recomputed=update_ratio * num_tokens)
    return selective / vit_layer_flops(width, mlp_width, num_tokens)


def cacher_flop_fraction(cache_interval: int, update_ratio: float, width: int, mlp_width: int, num_tokens: int) -> float:
    """F(N, r) = [1 + (N-1)·f_sel(r)] / N: average fraction over one reference + N-1 selective frames."""
    f_sel = selective_fraction(update_ratio, width, mlp_width, num_tokens)
    return (1 + (cache_interval - 1) * f_sel) / cache_interval
