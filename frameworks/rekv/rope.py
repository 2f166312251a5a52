"""Rotary position embedding applied at attention time (keys are stored without RoPE).

ReKV needs RoPE for arbitrary positions chosen per call (window positions, re-indexed retrieved blocks),
so cos/sin are computed here for exactly the positions needed. Angles are computed in float64: absolute
positions in a long stream exceed 10^5, where float32 angles lose ~1e-2 rad; in float64 they are exact
to ~1e-9, and short-stream results agree with HF's float32 table to ~1e-7.

Same convention as HF Qwen2/Llama (`rotate_half` on two halves, `cat(freqs, freqs)`), reading the model's
own `rotary_emb.inv_freq` and `attention_scaling`; only RoPE types with a static frequency table are
accepted (dynamic/longrope rescale with the sequence length, which a streaming window cannot follow).
"""

from __future__ import annotations

import torch
from torch import nn

_STATIC_ROPE_TYPES = ("default", "linear", "llama3")


class RotaryTable:
    """cos/sin for given integer positions, in the model dtype, from the LM's rotary module."""

    def __init__(self, rotary_emb: nn.Module, dtype: torch.dtype):
        rope_type = getattr(rotary_emb, "rope_type", "default")
        if rope_type not in _STATIC_ROPE_TYPES:
            raise ValueError(f"ReKV streaming supports RoPE types {_STATIC_ROPE_TYPES}, the model uses {rope_type!r}")
        self.inv_freq = rotary_emb.inv_freq.detach().to(torch.float64)
        self.scaling = float(getattr(rotary_emb, "attention_scaling", 1.0))
        self.dtype = dtype

    def cos_sin(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions [N] int64 -> cos, sin [N, head_dim]."""
        inv_freq = self.inv_freq.to(positions.device)
        freqs = positions.to(torch.float64)[:, None] * inv_freq[None, :]
        angles = torch.cat([freqs, freqs], dim=-1)
        return (angles.cos() * self.scaling).to(self.dtype), (angles.sin() * self.scaling).to(self.dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [..., N, D] rotated by cos/sin [N, D] (HF `apply_rotary_pos_emb` convention)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def rotation_tables(rope: RotaryTable, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos [N, 1, D] and sign-folded sin [N, 1, D] for `rotate` (token-major, broadcast over heads)."""
    cos, sin = rope.cos_sin(positions)
    half = sin.shape[-1] // 2
    return cos[:, None], torch.cat([-sin[:, :half], sin[:, half:]], dim=-1)[:, None]


def rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """`apply_rotary` in three kernels: x·cos + roll(x, D/2)·[-sin1, sin2] (roll(x) = [x2, x1], so
    the product is rotate_half(x)·sin)."""
    return torch.addcmul(x * cos, x.roll(x.shape[-1] // 2, dims=-1), signed_sin)


def rope_pair(queries: torch.Tensor, keys: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Pre-RoPE queries [Hq, S, D] and keys [Hkv, S, D] -> rotated, token-major [S, Hq + Hkv, D]."""
    return rotate(torch.cat([queries, keys]).transpose(0, 1), cos, signed_sin)
