"""FLOP model of STC (stc-method.md §2.8, baselines-peers.md §3): the theory every STC row is judged by.
The ViT formulas live in `stc.flops` (one source); this module adds model shapes and the LLM pre-fill.

ViT (per layer, per frame, multiply-add = 2 FLOPs; LN, softmax, similarity, top-k, gathers ignored):

    F_full = T·(8d² + 4Td + 4dm)
    F_sel  = T·2d² + k·(6d² + 4Td + 4dm)          k = r·T recomputed tokens, fresh K for all T
    f_sel  = F_sel / F_full
    F(N,r) = [1 + (N-1)·f_sel] / N                 one reference frame every N frames

LLM pre-fill of n new tokens after c cached tokens (per layer): linear part n·2·P_layer plus attention
4·d_q per (query, key) pair with causal masking inside the chunk. Pruning 196 -> k changes n and the
context both; `prefill_fraction` compares whole pre-fills of F frames in chunks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stc.flops import selective_fraction, vit_layer_flops


@dataclass(frozen=True)
class ViTShape:
    """d = width, m = MLP width, T = tokens per frame, layers = encoder depth."""

    d: int
    m: int
    T: int
    layers: int


def vit_layer_flops_full(s: ViTShape) -> float:
    return vit_layer_flops(s.d, s.m, s.T)


def vit_layer_flops_selective(s: ViTShape, k: float) -> float:
    return vit_layer_flops(s.d, s.m, s.T, recomputed=k)


def f_sel(s: ViTShape, r: float, exact_k: bool = False) -> float:
    """Selective-frame FLOP fraction. exact_k: use k = max(1, floor(r·T)) as the cacher runs it."""
    ratio = max(1, min(s.T, math.floor(s.T * r))) / s.T if exact_k else r
    return selective_fraction(ratio, s.d, s.m, s.T)


def vit_fraction(s: ViTShape, N: int, r: float, exact_k: bool = False) -> float:
    """F(N, r): average ViT FLOP fraction with one reference every N frames (infinite stream)."""
    return (1 + (N - 1) * f_sel(s, r, exact_k)) / N


def vit_stream_fraction(s: ViTShape, N: int, r: float, frames: int) -> float:
    """F(N, r) for a finite stream of `frames` frames starting with a reference (frame 0, N, 2N, ...)."""
    refs = math.ceil(frames / N)
    return (refs + (frames - refs) * f_sel(s, r, exact_k=True)) / frames


@dataclass(frozen=True)
class LLMShape:
    """Decoder sizes: hidden d, MLP m, query width dq = heads·head_dim, kv width dkv, layers."""

    d: int
    m: int
    dq: int
    dkv: int
    layers: int

    @property
    def linear_flops_per_token(self) -> float:
        # q, o (d·dq each), k, v (d·dkv each), gate/up/down (3·d·m); 2 FLOPs per MAC
        return 2 * (2 * self.d * self.dq + 2 * self.d * self.dkv + 3 * self.d * self.m)


def prefill_flops(s: LLMShape, new_tokens: int, context: int) -> float:
    """FLOPs of pre-filling `new_tokens` after `context` cached ones (causal inside the chunk)."""
    pairs = new_tokens * context + new_tokens * (new_tokens + 1) / 2
    return s.layers * (new_tokens * s.linear_flops_per_token + 4 * s.dq * pairs)


def prefill_stream_flops(s: LLMShape, frames: int, tokens_per_frame: int, frames_per_chunk: int,
                         prompt_tokens: int) -> float:
    """Total FLOPs of pre-filling `frames` frames in chunks of `frames_per_chunk` after a prompt."""
    total, ctx, left = 0.0, prompt_tokens, frames
    while left > 0:
        n = min(frames_per_chunk, left) * tokens_per_frame
        total += prefill_flops(s, n, ctx)
        ctx, left = ctx + n, left - min(frames_per_chunk, left)
    return total


def prefill_fraction(s: LLMShape, frames: int, k_full: int, k_kept: int, frames_per_chunk: int,
                     prompt_tokens: int) -> float:
    """Theoretical pre-fill fraction of STC (k_kept tokens/frame) vs the baseline (k_full)."""
    base = prefill_stream_flops(s, frames, k_full, frames_per_chunk, prompt_tokens)
    return prefill_stream_flops(s, frames, k_kept, frames_per_chunk, prompt_tokens) / base


def vit_shape_from_config(vision_config, tokens: int) -> ViTShape:
    """ViTShape from a HF SigLIP/CLIP vision config (or Qwen2-VL vision config: embed_dim, mlp_ratio)."""
    if hasattr(vision_config, "embed_dim"):  # Qwen2-VL
        d = vision_config.embed_dim
        return ViTShape(d=d, m=int(d * vision_config.mlp_ratio), T=tokens, layers=vision_config.depth)
    return ViTShape(d=vision_config.hidden_size, m=vision_config.intermediate_size, T=tokens,
                    layers=vision_config.num_hidden_layers)


def llm_shape_from_config(text_config) -> LLMShape:
    heads = text_config.num_attention_heads
    head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // heads
    return LLMShape(d=text_config.hidden_size, m=text_config.intermediate_size, dq=heads * head_dim,
                    dkv=text_config.num_key_value_heads * head_dim, layers=text_config.num_hidden_layers)
