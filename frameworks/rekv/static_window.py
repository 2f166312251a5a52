"""ReKV's encoding-time context in fixed buffers, so one CUDA graph per chunk size serves a whole stream.

Same semantics as `local_window.LocalWindow` (init sink + the newest <= n_local video tokens; new tokens
attend to [sink, window, themselves causally]; keys rotated once at their absolute stream position; sink
re-rotated per call to sit just before the window, or ReKV's released fixed-distance sink), different
storage:

- one buffer per layer, token-major [n_init + n_local, Hkv, D] (FlashAttention's variable-length layout):
  the sink in the first n_init rows, then a RING of n_local rows. While the stream is shorter than the
  window, tokens fill the ring from row 0 in order, so the valid rows are always a prefix of the buffer;
  afterwards every row is valid. The ring's order is irrelevant to attention (keys carry their RoPE
  position), so the valid context is "the first n_init + fill rows", one length;
- the stream's counters (next position, fill, write pointer) live in a device tensor `meta`, read and
  advanced by the step itself: a captured step replays with no host->device traffic;
- attention is split (frameworks/common/split_attention.py): the new queries over the context (sink +
  valid ring rows; its length read on the device) in P key chunks — ONE variable-length FlashAttention
  call over equal shares of the valid rows, P chosen to fill one wave of thread blocks (flash-decoding;
  without it 64 queries over 15 000 keys ran on 28 of 132 SMs and took 12.8 ms per step on an H200;
  `context_splits`) — plus the new tokens over
  themselves (causal), all merged by log-sum-exp. The new tokens are written into the ring (over the
  oldest rows) only AFTER their layer's attention, so the tokens evicted by this call are still visible
  to it, as in ReKV;
- per step, not per layer: the sink keys of ALL layers are re-rotated in one op, the chunk lengths are
  computed once, and RoPE of queries and keys is one fused rotation (`rotate`).

The host mirrors the counters as ints (`fill`, `next_position`, `evicted`) for bookkeeping and for the
choice of the sink mode; they are never read back from the device.
"""

from __future__ import annotations

from typing import Optional

import torch

from frameworks.common.split_attention import SplitAttention
from frameworks.rekv.backends import RawKV
from frameworks.rekv.rope import RotaryTable, rope_pair, rotate, rotation_tables

NEXT, FILL, WRITE = 0, 1, 2  # rows of `meta`


class StaticWindow:
    def __init__(self, num_layers: int, kv_heads: int, head_dim: int, n_local: int, dtype: torch.dtype,
                 device: torch.device, rope: RotaryTable, attention: SplitAttention, sink_positions: str = "window",
                 splits: Optional[int] = None, q_heads: int = 1):
        self.shape, self.q_heads = (num_layers, kv_heads, head_dim), q_heads
        self.n_local, self.dtype, self.device, self.rope = n_local, dtype, device, rope
        self.splits = splits  # key chunks of the context attention; None = `context_splits` for the GPU
        self.rope_pair = torch.compile(rope_pair, dynamic=False) if attention.compile_glue else rope_pair
        self.attention, self.sink_positions = attention, sink_positions
        self.init_keys = self.init_values = None  # [L, Hkv, n_init, D], keys WITHOUT RoPE (LocalWindow's layout)
        self.n_init = 0
        self.meta = torch.zeros(3, dtype=torch.long, device=device)
        self._allocate()
        self.clear()

    # ---- lifetime ------------------------------------------------------------------------------
    def set_init(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Install the init sink (pre-RoPE keys/values [L, Hkv, n_init, D]) and start an empty window."""
        self.init_keys, self.init_values = keys, values
        self.n_init = keys.shape[2]
        self.sink_keys = keys.transpose(1, 2).contiguous()      # [L, n_init, Hkv, D], pre-RoPE
        self.sink_values = values.transpose(1, 2).contiguous()
        self._allocate()
        self.clear()

    def _allocate(self) -> None:
        layers, heads, dim = self.shape
        rows = self.n_init + self.n_local
        self.keys = torch.zeros(layers, rows, heads, dim, dtype=self.dtype, device=self.device)
        self.values = torch.zeros_like(self.keys)  # zeros: the reference kernel multiplies masked rows by 0
        if self.n_init:
            self.values[:, :self.n_init] = self.sink_values

    def clear(self) -> None:
        """Empty the window (new video). The sink stays."""
        self.fill = self.write = self.evicted = 0
        self.next_position = self.n_init
        self.meta.zero_()  # fills on the device: no host->device copy, no stream sync
        self.meta[NEXT].fill_(self.next_position)

    @property
    def length(self) -> int:
        return self.fill

    @property
    def fixed_distance_sink(self) -> bool:
        """ReKV's released sink rule applies (`LocalWindow.fixed_distance_sink`): tokens were evicted."""
        return self.sink_positions == "released" and self.n_init > 0 and self.evicted > 0

    def context_splits(self, num_new: int) -> int:
        """Key chunks of the context attention for a step of `num_new` queries (`splits` if set)."""
        if self.splits is not None:
            return self.splits
        return self.attention.splits(num_new, self.q_heads, self.shape[1], self.n_init + self.n_local, self.device)

    def slots(self, num_new: int) -> list[int]:
        """Buffer rows the next `num_new` tokens will be written to (host view of the device rule)."""
        return [self.n_init + (self.write + i) % self.n_local for i in range(num_new)]

    def advanced(self, num_new: int) -> None:
        """Host mirror of `StaticPrefill.advance` (call once per committed step)."""
        overflow = max(0, self.fill + num_new - self.n_local)
        self.evicted += overflow
        self.fill = min(self.fill + num_new, self.n_local)
        self.write = (self.write + num_new) % self.n_local
        self.next_position += num_new


class StaticPrefill:
    """One step over a `StaticWindow`: the backend `DecoderStack.run` calls per layer. Built INSIDE the
    captured region (it derives positions, rows and lengths from `window.meta` on the device).

    commit: write the new tokens into the ring (ingest); False = attend only (the question's retrieval
    pass). host_lengths: slice by the host's counters instead of reading lengths on the device (eager
    use; the reference kernel then needs no key mask). keep_raw: keep pre-RoPE K/V for the block store."""

    def __init__(self, window: StaticWindow, num_new: int, commit: bool = True, keep_raw: bool = True,
                 host_lengths: bool = False):
        if commit and num_new > window.n_local:
            raise ValueError(f"{num_new} new tokens do not fit a window of n_local={window.n_local}")
        self.window, self.num_new, self.commit, self.kept = window, num_new, commit, RawKV(keep_raw)
        self.fixed_sink = window.fixed_distance_sink  # decided by the host before this call's tokens arrive
        meta, device, n_init, rope = window.meta, window.device, window.n_init, window.rope
        steps = torch.arange(num_new, device=device)
        self.cos, self.sin = rotation_tables(rope, meta[NEXT] + steps)
        self.rows = n_init + (meta[WRITE] + steps) % window.n_local
        ring_used = window.fill if host_lengths else meta[FILL:FILL + 1]
        splits = window.context_splits(num_new)
        attention = window.attention
        if not self.fixed_sink:
            if n_init:  # the sink of every layer, just before the window's first token (one op per step)
                first = meta[NEXT] - meta[FILL]
                cos, sin = rotation_tables(rope, first - n_init + torch.arange(n_init, device=device))
                window.keys[:, :n_init] = rotate(window.sink_keys, cos, sin)
            self.plan = attention.plan_chunks(n_init + window.n_local, splits, ring_used + n_init, device)
        else:  # released: queries rotated as if at n_local, sink keys unrotated at position 0
            self.sink_cos, self.sink_sin = rotation_tables(rope, torch.full((1,), window.n_local, device=device))
            self.plan = attention.plan_chunks(window.n_local, splits, ring_used, device)

    def raw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-RoPE keys and values of the new tokens for every layer: [L, Hkv, S, D] each."""
        return self.kept.stacked()

    def __call__(self, layer, queries, keys, values, scale):
        """queries [Hq, S, D], keys/values [Hkv, S, D] without RoPE (DecoderStack's convention)."""
        self.kept.add(keys, values)
        window, attention, q_heads = self.window, self.window.attention, queries.shape[0]
        rotated = window.rope_pair(queries, keys, self.cos, self.sin)        # [S, Hq + Hkv, D] token-major
        q, k, v = rotated[:, :q_heads], rotated[:, q_heads:], values.transpose(0, 1)
        buffer_k, buffer_v, n_init = window.keys[layer], window.values[layer], window.n_init
        own = attention(q, k, v, scale, causal=True)
        if not self.fixed_sink:
            out = attention.merge_chunks(attention.context(q, buffer_k, buffer_v, scale, self.plan), [own], queries.dtype)
        else:
            q_sink = rotate(queries.transpose(0, 1), self.sink_cos, self.sink_sin)
            sink = attention(q_sink, window.sink_keys[layer], window.sink_values[layer], scale)
            ring = attention.context(q, buffer_k[n_init:], buffer_v[n_init:], scale, self.plan)
            out = attention.merge_chunks(ring, [sink, own], queries.dtype)
        if self.commit:  # after this layer's attention: the rows overwritten are the ones evicted now
            buffer_k.index_copy_(0, self.rows, k)
            buffer_v.index_copy_(0, self.rows, v)
        return out

    def advance(self) -> None:
        """Advance the device counters by this step's tokens (part of the captured step)."""
        meta, window, count = self.window.meta, self.window, self.num_new
        fill = torch.clamp(meta[FILL] + count, max=window.n_local)
        meta.copy_(torch.stack([meta[NEXT] + count, fill, (meta[WRITE] + count) % window.n_local]))


class StaticRetrieval(StaticPrefill):
    """The question's retrieval pass over a `StaticWindow`: attend like a pre-fill (nothing written) and
    select each layer's top-k blocks with the mean pre-RoPE query of the question (as
    `backends.RetrievalPass`). Shape-static, so one CUDA graph serves every question of a padded length
    over a store of any size (`graphed_step.GraphedSteps.select`):
    - the question is right-padded to `num_new` rows, the first `count` real (`count` [1], a device
      tensor). Pads come after every real token, so causal attention keeps them out of the real tokens'
      outputs (and nothing is written), and the mean query weighs only the real rows (float32);
    - blocks are scored over the store's whole representative-key buffer, those at or past `num_blocks`
      ([1], a device tensor) masked out (`BlockStore.select_live`)."""

    def __init__(self, window: StaticWindow, num_new: int, store, topk: int, count: torch.Tensor,
                 num_blocks: torch.Tensor):
        super().__init__(window, num_new, commit=False, keep_raw=False)
        self.blocks, self.topk = store, topk
        device = window.device
        self.weights = (torch.arange(num_new, device=device) < count).float() / count.float()   # [S]
        self.live = torch.arange(store.rep_keys.shape[1], device=device) < num_blocks            # [capacity]
        self.selected: list[torch.Tensor] = []

    def __call__(self, layer, queries, keys, values, scale):
        mean = (queries.float() * self.weights[:, None]).sum(dim=1)  # [Hq, D]: real rows only
        self.selected.append(self.blocks.select_live(layer, mean, self.topk, self.live))
        return super().__call__(layer, queries, keys, values, scale)
