"""Attention for the fused STC-Cacher layers: a chosen SDPA kernel, and key-split attention for few queries.

Why (H200 profile, one SigLIP-so400m layer, `scripts/gpu/vit_layer_kernels.py`, docs/stc/layer-kernels.md):
- A selective frame's attention (182 queries over 729 keys, 16 heads) took 14 µs, as long as the dense
  729 x 729 one: the kernel tiles queries only, so 182 queries fill 3 x 16 = 48 thread blocks of 132
  SMs, each walking all 729 keys. Splitting the keys into P equal parts runs P times as many blocks,
  each over T/P keys; the parts are merged exactly with their log-sum-exps (the flash-decoding rule):
  out = sum_p exp(lse_p - lse) out_p, lse = logsumexp_p lse_p.
- Which SDPA kernel runs also decides the output layout, hence whether the [B, H, q, hd] -> [B, q, D]
  transpose before the out-projection costs a copy (`kernel`).

`kernel`: "sdpa" (F.scaled_dot_product_attention, PyTorch picks), "flash", "cudnn" or "efficient" (that
ATen kernel, CUDA only, half precision; float32 on CUDA runs "efficient", float64 the plain math; on CPU
every kernel runs ATen's CPU flash attention). All are plain ATen ops, so
torch.compile keeps them as extern calls and fuses the merge into one pointwise kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stc.config import FUSED_ATTENTION_KERNELS as KERNELS  # noqa: E402,F401 - the names `kernel` takes


def key_splits(tokens: int, wanted: int) -> int:
    """The largest P <= wanted that divides `tokens` (the parts are views, so they must be equal)."""
    for parts in range(max(1, min(wanted, tokens)), 0, -1):
        if tokens % parts == 0:
            return parts
    return 1


def _math_with_lse(q, k, v, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The same on any device and dtype (float64 on CUDA: no fused kernel takes it)."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    lse = torch.logsumexp(scores, dim=-1)
    return torch.matmul(torch.exp(scores - lse.unsqueeze(-1)), v), lse


def _with_lse(q, k, v, scale: float, kernel: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(out [B, H, q, hd], log-sum-exp [B, H, q]) of softmax(q k^T * scale) v. On CUDA, "flash" and
    "cudnn" take half precision only: float32 runs "efficient", float64 the math."""
    if q.is_cuda and q.dtype not in (torch.float16, torch.bfloat16):
        if q.dtype != torch.float32:
            return _math_with_lse(q, k, v, scale)
        kernel = "efficient"
    if not q.is_cuda:
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, False, scale=scale)
    elif kernel == "cudnn":
        out, lse = torch.ops.aten._scaled_dot_product_cudnn_attention(q, k, v, None, True, 0.0, False, False,
                                                                      scale=scale)[:2]
    elif kernel == "efficient":
        out, lse = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, True, 0.0, False,
                                                                          scale=scale)[:2]
    else:
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, False, False, scale=scale)[:2]
    lse = lse.reshape(lse.shape[0], lse.shape[1], -1)[..., : q.shape[2]]  # cudnn: [.., q, 1]; efficient: padded
    return out, lse


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, kernel: str = "sdpa",
              splits: int = 1) -> torch.Tensor:
    """softmax(q k^T * scale) v for q [B, H, q, hd], k and v [B, H, T, hd] -> [B, H, q, hd], with the
    keys split into `key_splits(T, splits)` parts (1: one plain call)."""
    parts = key_splits(k.shape[2], splits)
    if parts == 1:
        if kernel == "sdpa" or not q.is_cuda or q.dtype not in (torch.float16, torch.bfloat16):
            return F.scaled_dot_product_attention(q, k, v, scale=scale)
        return _with_lse(q, k, v, scale, kernel)[0]
    batch, heads, queries, dim = q.shape
    part = k.shape[2] // parts

    def split(x):  # [B, H, T, hd] -> [B*P, H, T/P, hd]; a view when T is the outer dim of x's storage
        return x.unflatten(2, (parts, part)).transpose(1, 2).reshape(batch * parts, heads, part, dim)

    q_parts = q.unsqueeze(1).expand(batch, parts, heads, queries, dim).reshape(batch * parts, heads, queries, dim)
    out, lse = _with_lse(q_parts, split(k), split(v), scale, "flash" if kernel == "sdpa" else kernel)
    merge = torch.promote_types(q.dtype, torch.float32)  # bf16 parts merge in fp32; fp64 stays fp64
    out = out.unflatten(0, (batch, parts)).to(merge)
    lse = lse.unflatten(0, (batch, parts)).to(merge)
    weights = torch.softmax(lse, dim=1).unsqueeze(-1)  # exp(lse_p - logsumexp_p lse_p)
    return (out * weights).sum(dim=1).to(q.dtype)
