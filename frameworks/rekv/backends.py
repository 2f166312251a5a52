"""The four ReKV attention modes, as backends for `DecoderStack.run` (one object per LLM call).

- `SinkEncoding`: the init prompt, plain causal attention at positions 0..n-1; keeps its pre-RoPE K/V.
- `WindowPrefill`: video tokens attend to [sink, local window, themselves]; their pre-RoPE K/V go to the
  block store (one block per frame) and, rotated, into the local window.
- `RetrievalPass`: the question attends like `WindowPrefill` but leaves no trace; each layer averages the
  question's pre-RoPE queries and picks its own top-k frame blocks.
- `AnswerAttention`: the templated prompt and the generated tokens attend to [sink + retrieved blocks,
  themselves] with positions re-indexed from 0 over that context (`AnswerCache`).
"""

from __future__ import annotations

import torch

from frameworks.rekv.attention import prefix_causal_attention, tail_causal_mask
from frameworks.rekv.block_store import BlockStore
from frameworks.rekv.local_window import LocalWindow
from frameworks.rekv.rope import RotaryTable, apply_rotary


class SinkEncoding:
    def __init__(self, rope: RotaryTable, length: int, device: torch.device):
        self.cos, self.sin = rope.cos_sin(torch.arange(length, device=device))
        self.kept = RawKV(keep=True)
        self.masks: dict = {}

    def __call__(self, layer, queries, keys, values, scale):
        self.kept.add(keys, values)
        q, k = apply_rotary(queries, self.cos, self.sin), apply_rotary(keys, self.cos, self.sin)
        return prefix_causal_attention(q, k, values, scale, self.masks)

    def sink(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-RoPE keys and values of every layer: [L, Hkv, n_init, D] each."""
        return self.kept.stacked()


class RawKV:
    """The pre-RoPE keys/values of a call's new tokens, layer by layer, for the block store (`keep=False`:
    none kept; the question's passes store nothing)."""

    def __init__(self, keep: bool):
        self.keep = keep
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def add(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        if self.keep:
            self.keys.append(keys)
            self.values.append(values)

    def stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """[L, Hkv, S, D] each."""
        return torch.stack(self.keys), torch.stack(self.values)


class WindowPrefill:
    """Pre-fill of `num_new` tokens over [sink, local window, themselves]. With `keep_raw`, the pre-RoPE
    keys/values of every layer are kept for the block store (`raw()`, written once per call)."""

    def __init__(self, window: LocalWindow, rope: RotaryTable, num_new: int, keep_raw: bool = True):
        self.window, self.masks, self.kept = window, {}, RawKV(keep_raw)
        self.fixed_sink = window.fixed_distance_sink  # decided before this call's tokens arrive
        self.cos, self.sin = rope.cos_sin(window.prepare(num_new))
        if self.fixed_sink:  # released: queries rotated as if at n_local, sink keys at position 0 (unrotated)
            self.sink_cos, self.sink_sin = rope.cos_sin(torch.full((1,), window.n_local, device=window.device))

    def raw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-RoPE keys and values of the new tokens for every layer: [L, Hkv, S, D] each."""
        return self.kept.stacked()

    def __call__(self, layer, queries, keys, values, scale):
        self.kept.add(keys, values)
        q, k = apply_rotary(queries, self.cos, self.sin), apply_rotary(keys, self.cos, self.sin)
        context_keys, context_values = self.window.context(layer, k, values)
        if not self.fixed_sink:
            return prefix_causal_attention(q, context_keys, context_values, scale, self.masks)
        n_init = self.window.n_init
        q_sink = apply_rotary(queries, self.sink_cos, self.sink_sin)
        return sink_and_window_attention(q, context_keys[:, n_init:], context_values[:, n_init:], q_sink,
                                         self.window.init_keys[layer], self.window.init_values[layer], scale)


def sink_and_window_attention(queries, keys, values, sink_queries, sink_keys, sink_values, scale: float) -> torch.Tensor:
    """Released two-source attention (ReKV/InfLLM `multi_stage` with log-sum-exp merge), computed as one
    softmax over [sink scores | window scores] in (at least) float32.

    queries [Hq, S, D] rotated at their window positions attend to keys/values [Hkv, L, D] (whose last S
    rows are their own tokens, lower-right causal); sink_queries (the same queries rotated at n_local)
    attend to the pre-RoPE sink keys [Hkv, n_init, D] (position 0). Returns [S, Hq·D]. Memory is
    O(Hq·S·L) floats per layer (~0.3 GB at 7B, 196 new tokens, n_local 15000): a parity path, not the fast one.
    """
    q_heads, length, dim = queries.shape
    kv_heads, num_keys = keys.shape[0], keys.shape[1]
    groups = q_heads // kv_heads
    acc = torch.promote_types(queries.dtype, torch.float32)  # at least float32 for the softmax
    fold = lambda x: x.reshape(kv_heads, groups * length, dim).to(acc)  # noqa: E731 (GQA without copying K/V)
    window_scores = fold(queries) @ keys.to(acc).transpose(1, 2) * scale
    mask = tail_causal_mask(length, num_keys, queries.device).repeat(groups, 1)
    window_scores.masked_fill_(~mask, float("-inf"))
    sink_scores = fold(sink_queries) @ sink_keys.to(acc).transpose(1, 2) * scale
    probs = torch.softmax(torch.cat([sink_scores, window_scores], dim=-1), dim=-1)
    n_init = sink_keys.shape[1]
    out = probs[..., :n_init] @ sink_values.to(acc) + probs[..., n_init:] @ values.to(acc)
    out = out.reshape(q_heads, length, dim).to(queries.dtype)
    return out.transpose(0, 1).reshape(length, q_heads * dim)


class RetrievalPass(WindowPrefill):
    """Question pass: attend like a pre-fill (nothing stored) and select blocks per layer."""

    def __init__(self, window: LocalWindow, rope: RotaryTable, num_new: int, store: BlockStore, topk: int | None):
        super().__init__(window, rope, num_new, keep_raw=False)
        self.blocks, self.topk = store, topk
        self.selected: list[torch.Tensor] = []

    def __call__(self, layer, queries, keys, values, scale):
        self.selected.append(self.blocks.select(layer, queries.mean(dim=1), self.topk))
        return super().__call__(layer, queries, keys, values, scale)


class EagerSteps:
    """The plain streaming step (`ReKVConfig.llm_step="eager"`): a `WindowPrefill` over the growable
    `LocalWindow`, run from Python on every call. Same interface as `graphed_step.GraphedSteps`, so the
    host never branches on the mode: calling it pre-fills a chunk and returns the pre-RoPE K/V
    [L, Hkv, S, D] for the block store; `select` runs the question's retrieval pass."""

    def __init__(self, window: LocalWindow, rope: RotaryTable, run_stack):
        self.window, self.rope, self.run_stack = window, rope, run_stack

    def __call__(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        backend = WindowPrefill(self.window, self.rope, hidden.shape[0])
        self.run_stack(hidden, backend)
        self.window.commit(hidden.shape[0])
        return backend.raw()

    def select(self, hidden: torch.Tensor, store: BlockStore, topk: int) -> torch.Tensor:
        """The question's retrieval pass: every layer's top-k block indices [L, topk], ascending."""
        backend = RetrievalPass(self.window, self.rope, hidden.shape[0], store, topk)
        self.run_stack(hidden, backend)
        return torch.stack(backend.selected)


class AnswerCache:
    """Per-layer context for answering: rotated keys/values [L, Hkv, capacity, D], positions 0..length-1."""

    def __init__(self, num_layers: int, kv_heads: int, head_dim: int, capacity: int, dtype, device, rope: RotaryTable):
        self.keys = torch.empty(num_layers, kv_heads, capacity, head_dim, dtype=dtype, device=device)
        self.values = torch.empty_like(self.keys)
        self.rope, self.device, self.length = rope, device, 0
        self.pending_load = None  # load_during_prefill: loads layer l right before layer l attends (host.py)

    def load(self, layer: int | slice, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Place pre-RoPE context keys/values [Hkv, n, D] of one layer at positions 0..n-1 (all layers
        must load the same n; `length` is set by `loaded`). `layer` may be any index of the layer axis
        (`load_all` passes every layer)."""
        count = keys.shape[-2]
        cos, sin = self.rope.cos_sin(torch.arange(count, device=self.device))
        self.keys[layer, :, :count] = apply_rotary(keys, cos, sin)
        self.values[layer, :, :count] = values

    def load_all(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """`load` for every layer at once: pre-RoPE keys/values [L, Hkv, n, D] (one rotation and two copies
        for the whole context instead of a handful of kernels per layer)."""
        self.load(slice(None), keys, values)

    def loaded(self, count: int) -> None:
        self.length = count


class AnswerAttention:
    """Prompt pre-fill / one decoding step over an `AnswerCache`; call `cache.length += S` afterwards."""

    def __init__(self, cache: AnswerCache, num_new: int):
        if cache.length + num_new > cache.keys.shape[2]:
            raise RuntimeError(f"answer cache capacity {cache.keys.shape[2]} exceeded")
        self.cache, self.num_new, self.masks = cache, num_new, {}
        positions = torch.arange(num_new, device=cache.device) + cache.length
        self.cos, self.sin = cache.rope.cos_sin(positions)

    def __call__(self, layer, queries, keys, values, scale):
        cache, lo, hi = self.cache, self.cache.length, self.cache.length + self.num_new
        cache.keys[layer, :, lo:hi] = apply_rotary(keys, self.cos, self.sin)
        cache.values[layer, :, lo:hi] = values
        q = apply_rotary(queries, self.cos, self.sin)
        return prefix_causal_attention(q, cache.keys[layer, :, :hi], cache.values[layer, :, :hi], scale, self.masks)
