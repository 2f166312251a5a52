"""Attention of new tokens over [visible prefix + themselves] with one SDPA call.

Every ReKV attention has the same shape: S new queries attend to a key sequence whose first Lk - S keys
(init sink + local window, or init + retrieved blocks) are fully visible and whose last S keys are the
new tokens themselves, causally ("lower-right" causal). SDPA's `is_causal` is upper-left aligned for
Lq != Lk, so the mask is explicit (a boolean [S, Lk]; none at all when S == 1).

GQA without copying keys: the Hq = Hkv·G query heads are folded into the query axis of their KV head
([Hkv, G·S, D]), so K/V are never expanded (HF `repeat_kv` would copy the whole 15k-token window per
layer and call). Head h uses KV head h // G, as in HF.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def tail_causal_mask(num_queries: int, num_keys: int, device: torch.device) -> torch.Tensor:
    """Boolean [S, Lk]: query i sees keys j <= (Lk - S) + i (True = attend)."""
    queries = torch.arange(num_queries, device=device)[:, None]
    keys = torch.arange(num_keys, device=device)[None, :]
    return keys <= queries + (num_keys - num_queries)


def prefix_causal_attention(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scale: float,
                            mask_cache: dict | None = None) -> torch.Tensor:
    """queries [Hq, S, D] (RoPE applied), keys/values [Hkv, Lk, D] whose last S rows are the queries' own
    tokens. Returns [S, Hq·D] (the layout `o_proj` expects). `mask_cache` (a dict owned by the caller,
    e.g. one per LLM call) reuses the folded mask across layers of the same shape."""
    q_heads, length, dim = queries.shape
    kv_heads, num_keys = keys.shape[0], keys.shape[1]
    if q_heads % kv_heads:
        raise ValueError(f"query heads {q_heads} must be a multiple of key/value heads {kv_heads}")
    if num_keys < length:
        raise ValueError(f"{num_keys} keys cannot contain the {length} query tokens")
    groups = q_heads // kv_heads
    folded = queries.reshape(kv_heads, groups * length, dim)
    mask = None
    if length > 1:
        key = (length, num_keys, groups)
        mask = None if mask_cache is None else mask_cache.get(key)
        if mask is None:
            mask = tail_causal_mask(length, num_keys, queries.device).repeat(groups, 1)
            if mask_cache is not None:
                mask_cache[key] = mask
    out = F.scaled_dot_product_attention(folded[None], keys[None], values[None], attn_mask=mask, scale=scale)
    out = out[0].reshape(q_heads, length, dim)
    return out.transpose(0, 1).reshape(length, q_heads * dim)
