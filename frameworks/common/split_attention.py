"""Attention of new tokens over a cached context whose length lives on the device, merged by log-sum-exp.

Why split: a streaming step's S new queries attend to [cached context, themselves (causally)]. When the
cache is a fixed-capacity ring (one address for the whole stream, so one CUDA graph serves every call),
the context is not contiguous with the new tokens and its fill length changes every call. Instead of a
materialised [S, capacity] mask, the attention is computed in parts that each need no mask:

    part "context": S queries over the first `used` rows of a key buffer (no mask; `used` on device),
    part "self":    S queries over the S new keys, causal (square, so upper-left == lower-right),

and merged exactly with their log-sum-exps: out = sum_p exp(lse_p - m) out_p / sum_p exp(lse_p - m).
Softmax over the union of key sets equals this merge (it is how FlashAttention combines its blocks), so
parts may come from different kernels, and a third part (ReKV's released fixed-distance sink) is one
more item of the merge.

Long contexts with few queries (one frame, a decoding step) are cut into P key chunks (flash-decoding,
`plan_chunks` / `context`): FlashAttention gives one thread block per (128 query rows, head), so 64
queries of a 7B model over 15 000 keys would occupy 28 of an H200's 132 SMs. The chunks are ONE
variable-length call, and the G query heads of a KV head are folded into its query rows (K/V read once
per KV head). When the valid length lives on the device, the chunk bounds are computed there as P equal
shares of the VALID rows (not of the buffer's capacity): a window 2 000 rows into a 15 000-row ring keeps
all P chunks busy with ~2 000/P keys each, instead of 2 busy chunks and P-2 empty ones. `merge_chunks`
un-folds and merges; with `compile_glue` that glue is one or two Inductor kernels.

Kernels:
- "flash": `aten::_flash_attention_forward` in its variable-length form (FlashAttention-2, shipped with
  PyTorch CUDA builds): GQA native (Hq a multiple of Hkv, no K/V copies), the used length read on the
  device (`seqused_k`), returns the log-sum-exp. CUDA, fp16/bf16, head_dim <= 256 and a multiple of 8.
- "reference": plain torch math in float32, any device and dtype. With a host `used` it slices the
  buffer; with a device `used` it masks keys beyond it with a per-key vector (graph-safe, O(capacity)
  memory, never an [S, capacity] mask). Used on CPU, for float32 checks, and as the oracle in tests.

Layouts are token-major, as FlashAttention's variable-length API wants: queries [S, Hq, D], keys and
values [L, Hkv, D]; outputs [S, Hq, D] and lse [S, Hq] (float32; float64 for float64 inputs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch

Used = Union[int, torch.Tensor, None]


@dataclass(frozen=True)
class ChunkPlan:
    """Key chunks of one context (`SplitAttention.plan_chunks`): rows [0, total) of a key buffer cut into
    `count` chunks of at most `size` rows; chunk i is rows [bounds[i], bounds[i+1]) (`bounds` int32
    [count + 1], on the device). `on_device`: the bounds were computed on the device from a valid length
    (equal shares of it), so a chunk may be empty (fewer valid rows than chunks)."""

    total: int
    size: int
    count: int
    bounds: torch.Tensor
    on_device: bool


@dataclass(frozen=True)
class FoldedChunks:
    """Raw output of the flash `context`: out [P·G·S, Hkv, D] and lse [Hkv, P·G·S] with rows ordered
    (chunk, group, query); `may_be_empty`: chunks may hold no valid key (lse +inf from FlashAttention)."""

    out: torch.Tensor
    lse: torch.Tensor
    count: int
    groups: int
    may_be_empty: bool


def _merge_folded(out: torch.Tensor, lse: torch.Tensor, part_outs: list, part_lses: list, count: int, groups: int,
                  may_be_empty: bool, dtype: torch.dtype) -> torch.Tensor:
    """Un-fold flash chunk outputs to [P, S, Hq, D] / [P, S, Hq] (head = j·G + g) and merge them with
    the other parts — pure tensor code, compiled by `SplitAttention(compile_glue=True)`."""
    kv_heads, dim = out.shape[1], out.shape[2]
    length = out.shape[0] // (count * groups)
    q_heads = kv_heads * groups
    lse = lse.reshape(kv_heads, count, groups, length).permute(1, 3, 0, 2).reshape(count, length, q_heads).float()
    if may_be_empty:
        lse = lse.masked_fill(lse == float("inf"), float("-inf"))
    outs = out.view(count, groups, length, kv_heads, dim).permute(0, 2, 3, 1, 4).reshape(count, length, q_heads, dim)
    outs = torch.cat([outs.float()] + [part.float()[None] for part in part_outs])
    lses = torch.cat([lse] + [part[None] for part in part_lses])
    return _merge_stacked(outs, lses, dtype)


def fold_queries(queries: torch.Tensor, kv_heads: int, count: int) -> torch.Tensor:
    """[S, Hq, D] -> [count·G·S, Hkv, D]: the G = Hq / Hkv query heads of a KV head folded into its rows
    (rows ordered (chunk, group, query)), repeated for each of `count` key chunks of one variable-length
    FlashAttention call (exact: no mask depends on the query)."""
    length, q_heads, dim = queries.shape
    groups = q_heads // kv_heads
    folded = queries.view(length, kv_heads, groups, dim).permute(2, 0, 1, 3)[None]
    return folded.expand(count, groups, length, kv_heads, dim).reshape(count * groups * length, kv_heads, dim)


def context_splits(queries: int, q_heads: int, kv_heads: int, keys: int, device: torch.device, block: int = 128,
                   blocks_per_sm: int = 2, min_chunk: int = 128) -> int:
    """Key chunks P for `SplitAttention.context` (which folds the q_heads/kv_heads query heads of a KV head
    into its rows): as many as fit ONE wave of FlashAttention-2 thread blocks on this GPU (1 on CPU).

    A chunk costs ceil(folded rows / 128) × kv_heads thread blocks; FA2's head-dim-128 forward kernel
    runs `blocks_per_sm` = 2 blocks per SM on an H200. The split attention bench
    (scripts/gpu/split_attention_bench.py, docs/rekv/graphed-step.md) shows the wave edge sharply: 64
    queries of a 7B model over a full 15 000-key window take 61 µs per layer at P = 16 (256 blocks on 264
    slots) and 85 µs at P = 17 (272 blocks: a second wave for 8 blocks); one decoding query 19 µs at
    P = 66 and 27 µs at P = 67. Rounding P down to the wave was the best or within 5 µs of the best P at
    every size measured (1, 64, 196, 512 queries; 1 024, 2 800, 15 004 valid keys). `min_chunk` keeps
    chunks of a short buffer from being a handful of keys."""
    if device.type != "cuda":
        return 1
    slots = blocks_per_sm * torch.cuda.get_device_properties(device).multi_processor_count
    blocks = -(-queries * (q_heads // kv_heads) // block) * kv_heads
    return max(1, min(slots // blocks, keys // min_chunk))


def flash_supported(queries: torch.Tensor) -> bool:
    """Whether the FlashAttention-2 kernel applies to these tensors (device, dtype, head size)."""
    dim = queries.shape[-1]
    return (queries.is_cuda and queries.dtype in (torch.float16, torch.bfloat16) and dim <= 256 and dim % 8 == 0
            and hasattr(torch.ops.aten, "_flash_attention_forward"))


def pick_kernel(queries: torch.Tensor, preferred: str = "auto") -> str:
    """"flash" where it applies (or was asked for), else "reference"."""
    if preferred not in ("auto", "flash", "reference"):
        raise ValueError(f"unknown attention kernel {preferred!r} (auto | flash | reference)")
    if preferred == "auto":
        return "flash" if flash_supported(queries) else "reference"
    if preferred == "flash" and not flash_supported(queries):
        raise ValueError("attention kernel 'flash' needs CUDA fp16/bf16 tensors with head_dim <= 256, multiple of 8")
    return preferred


class SplitAttention:
    """One kernel choice plus the small device tensors the flash kernel needs ([0, n] sequence bounds),
    created once per size and reused, so calls made under CUDA-graph capture allocate none (a host->device
    copy cannot be captured). One object per stream/host; sizes are created on first (eager) use."""

    def __init__(self, kernel: str = "reference", compile_glue: bool = False):
        """compile_glue: compile the elementwise glue around the kernels (un-folding the chunk outputs,
        the log-sum-exp merge) with torch.compile, so it is a couple of fused kernels instead of ~15 per
        layer; used with flash on CUDA, where a one-frame step is ~1000 small kernels."""
        if kernel not in ("flash", "reference"):
            raise ValueError(f"unknown attention kernel {kernel!r} (flash | reference)")
        self.kernel, self.compile_glue = kernel, compile_glue
        self._bounds: dict[tuple, torch.Tensor] = {}
        self._merge_folded = torch.compile(_merge_folded, dynamic=False) if compile_glue else _merge_folded

    def splits(self, queries: int, q_heads: int, kv_heads: int, keys: int, device: torch.device) -> int:
        """Key chunks P for `context` with this object's kernel: `context_splits` for flash; 1 for the
        reference kernel, whose chunks on device bounds each read the whole buffer (masking the rows
        outside the chunk), so P chunks would be P times the work for no occupancy gain."""
        return context_splits(queries, q_heads, kv_heads, keys, device) if self.kernel == "flash" else 1

    def bounds(self, count: int, device: torch.device) -> torch.Tensor:
        """int32 [0, count] (one sequence of `count` rows)."""
        return self._edges(count, max(count, 1), device)

    def __call__(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scale: float, *,
                 causal: bool = False, used: Used = None) -> tuple[torch.Tensor, torch.Tensor]:
        """queries [S, Hq, D] over keys/values [L, Hkv, D] -> (out [S, Hq, D] (flash: input dtype; reference:
        float32/64), lse [S, Hq] float32). `used`: rows of keys that are valid (None = all; an int sliced on
        the host; a device int tensor [1] read on the device). `causal`: the queries are the LAST S valid
        keys' tokens (lower-right aligned: query i sees valid keys j <= used - S + i)."""
        too_few = keys.shape[0] < queries.shape[0] or (isinstance(used, int) and used < queries.shape[0])
        if causal and too_few:
            raise ValueError(f"causal attention needs the {queries.shape[0]} query tokens among the keys "
                             f"({keys.shape[0]} rows, {used} used)")
        if queries.shape[1] % keys.shape[1]:
            raise ValueError(f"query heads {queries.shape[1]} must be a multiple of key/value heads {keys.shape[1]}")
        if self.kernel == "flash":
            return self._flash(queries, keys, values, scale, causal, used)
        return _reference(queries, keys, values, scale, causal, used)

    def plan_chunks(self, total: int, splits: int, used: Used, device: torch.device) -> "ChunkPlan":
        """Split the valid rows of a `total`-row context into `splits` chunks (flash-decoding). Made once per
        step and shared by every layer. `used` on the device (a graph-captured step): chunk i is rows
        [i·used // P, (i+1)·used // P), computed on the device, so every chunk holds a share of the valid
        keys whatever the fill (`size`, the host's bound for the kernel, is ceil(total / P)). `used` an int
        or None: the same cut of the first `used` (or `total`) rows, on the host."""
        if isinstance(used, int):
            total, used = used, None
        splits = max(1, min(splits, total))
        size = -(-total // splits)
        if used is None:
            bounds = self._edges(total, size, device)
            return ChunkPlan(total, size, bounds.numel() - 1, bounds, False)
        steps = self._edges(splits, 1, device)                       # [0, 1, ..., P] int32, cached
        bounds = (steps * used.reshape(1).to(torch.int32)) // splits  # int32: P·used stays far below 2^31
        return ChunkPlan(total, size, splits, bounds, True)

    def context(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scale: float,
                plan: "ChunkPlan") -> tuple[torch.Tensor, torch.Tensor]:
        """Non-causal attention over the first `plan.total` context rows in `plan.count` key chunks. Few
        queries over many keys give FlashAttention one thread block per (query block, head) — 28 blocks
        for 64 queries of a 7B model on a 132-SM GPU, each walking 15 000 keys; P chunks give P times as
        many. Returns per-chunk (out [P, S, Hq, D], lse [P, S, Hq]) for `merge_chunks`; a chunk without a
        valid key has lse -inf. With flash, all chunks are ONE variable-length call (queries repeated per
        chunk)."""
        keys, values = keys[:plan.total], values[:plan.total]
        if self.kernel != "flash":
            outs, lses = [], []
            for index in range(plan.count):
                if plan.on_device:  # rows outside the chunk masked (graph-safe: no host read of the bounds)
                    out, lse = _reference(queries, keys, values, scale, False, plan.bounds[index + 1:index + 2],
                                          start=plan.bounds[index:index + 1])
                else:
                    lo, hi = index * plan.size, (index + 1) * plan.size
                    out, lse = _reference(queries, keys[lo:hi], values[lo:hi], scale, False, None)
                outs.append(out)
                lses.append(lse)
            return torch.stack(outs), torch.stack(lses)
        # GQA folded into the query axis (exact: no mask depends on the query): the G query heads of a KV
        # head are G·S rows of ONE head, so K/V are read once per KV head and thread blocks are full.
        groups = queries.shape[1] // keys.shape[1]
        rows = groups * queries.shape[0]
        folded = fold_queries(queries, keys.shape[1], plan.count)
        out, lse, *_ = torch.ops.aten._flash_attention_forward(
            folded, keys, values, self._edges(plan.count * rows, rows, queries.device),
            plan.bounds, rows, plan.size, 0.0, False, False, scale=scale)
        if lse.dim() == 3:  # [batch, H, rows] layout of some builds
            lse = lse.transpose(0, 1).reshape(lse.shape[1], -1)
        return FoldedChunks(out, lse[:, :plan.count * rows], plan.count, groups, plan.on_device)

    def merge_chunks(self, chunks, parts: list[tuple[torch.Tensor, torch.Tensor]] = (),
                     dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """`merge` of the chunks of `context` and further parts (e.g. the causal self part) -> [S, Hq·D]."""
        if isinstance(chunks, FoldedChunks):
            c = chunks
            return self._merge_folded(c.out, c.lse, [out for out, _ in parts], [lse for _, lse in parts],
                                      c.count, c.groups, c.may_be_empty, dtype or c.out.dtype)
        return merge_chunks(chunks, parts, dtype)

    def _edges(self, total: int, size: int, device: torch.device) -> torch.Tensor:
        """int32 [0, size, 2·size, ..., total], cached per shape (nothing is created under graph capture)."""
        key = (total, size, device)
        if key not in self._bounds:
            edges = list(range(0, total, size)) + [total]
            self._bounds[key] = torch.tensor(edges, dtype=torch.int32, device=device)
        return self._bounds[key]

    def _flash(self, queries, keys, values, scale, causal, used):
        if isinstance(used, int):
            keys, values, used = keys[:used], values[:used], None
        length, num_keys = queries.shape[0], keys.shape[0]
        seqused = None if used is None else used.reshape(1).to(torch.int32)
        out, lse, *_ = torch.ops.aten._flash_attention_forward(
            queries, keys, values, self.bounds(length, queries.device), self.bounds(num_keys, queries.device),
            length, num_keys, 0.0, causal, False, scale=scale, seqused_k=seqused)
        if lse.dim() == 3:  # [batch, Hq, S] in some builds; [Hq, total_q] in the variable-length form
            lse = lse[0]
        return out, lse[:, :length].transpose(0, 1).float()


def merge_chunks(chunks: tuple[torch.Tensor, torch.Tensor], parts: list[tuple[torch.Tensor, torch.Tensor]] = (),
                 dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """`merge` of the P chunks of `SplitAttention.context` ([P, S, Hq, D], [P, S, Hq]) and further parts."""
    outs, lses = chunks
    acc = lses.dtype
    if parts:
        outs = torch.cat([outs.to(acc)] + [out.to(acc)[None] for out, _ in parts])
        lses = torch.cat([lses] + [lse[None] for _, lse in parts])
    return _merge_stacked(outs, lses, dtype or chunks[0].dtype)


def merge(parts: list[tuple[torch.Tensor, torch.Tensor]], dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Exact softmax over the union of the parts' keys: [(out [S, Hq, D], lse [S, Hq])] -> [S, Hq·D].
    Every query must see at least one valid key in some part (the new tokens' causal self part always
    does); a part without any valid key for a query has lse -inf and weight 0."""
    acc = parts[0][1].dtype
    outs = torch.stack([out.to(acc) for out, _ in parts])
    lses = torch.stack([lse for _, lse in parts])
    return _merge_stacked(outs, lses, dtype or parts[0][0].dtype)


def _merge_stacked(outs: torch.Tensor, lses: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """outs [P, S, Hq, D], lses [P, S, Hq] -> [S, Hq·D] (a handful of kernels whatever P is)."""
    weights = torch.exp(lses - lses.amax(dim=0))           # the largest part has weight 1: no 0/0
    weights = weights / weights.sum(dim=0)
    out = (outs.to(weights.dtype) * weights[..., None]).sum(dim=0)
    length, heads, dim = out.shape
    return out.to(dtype).reshape(length, heads * dim)


# ---- kernels -------------------------------------------------------------------------------------------
def _reference(queries, keys, values, scale, causal, used, start: Optional[torch.Tensor] = None):
    """`start` (device [1], non-causal only): rows before it are masked too (a chunk of `plan_chunks`)."""
    if isinstance(used, int):
        keys, values, used = keys[:used], values[:used], None
    length, q_heads, dim = queries.shape
    kv_heads, groups = keys.shape[1], q_heads // keys.shape[1]
    acc = torch.promote_types(queries.dtype, torch.float32)  # float32, or float64 for float64 inputs
    q = queries.to(acc).reshape(length, kv_heads, groups, dim).permute(1, 2, 0, 3)  # [Hkv, G, S, D]
    k = keys.to(acc).transpose(0, 1)                                                # [Hkv, L, D]
    scores = torch.einsum("hgsd,hld->hgsl", q, k) * scale
    v = values.to(acc)
    if used is not None:  # rows beyond `used` may hold anything (torch.empty buffers): mask scores AND values
        rows = torch.arange(keys.shape[0], device=keys.device)
        valid = rows < used.to(keys.device).reshape(())
        if start is not None:
            valid &= rows >= start.to(keys.device).reshape(())
        scores = scores.masked_fill(~valid, float("-inf"))
        v = v.masked_fill(~valid[:, None, None], 0)
    if causal:  # lower-right: query i sees keys j <= valid - S + i
        valid_count = keys.shape[0] if used is None else used.to(keys.device).reshape(())
        last_visible = valid_count - length + torch.arange(length, device=keys.device)
        above = torch.arange(keys.shape[0], device=keys.device)[None, :] > last_visible[:, None]
        scores = scores.masked_fill(above, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)                                           # [Hkv, G, S]
    probs = torch.exp(scores - torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))[..., None])
    out = torch.einsum("hgsl,hld->hgsd", probs, v.transpose(0, 1))
    out = out.permute(2, 0, 1, 3).reshape(length, q_heads, dim)
    return out, lse.permute(2, 0, 1).reshape(length, q_heads)  # out stays in the accumulation dtype

