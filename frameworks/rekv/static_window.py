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
- attention is ONE FlashAttention call with the valid length on the device and lower-right causal
  alignment whenever [sink, window, new tokens] can be made contiguous, which the host decides per call
  from its counters (`phase`):
    "append": the window is still filling and the chunk fits: the new tokens are written at the end of
              the valid prefix first (where they stay), then attend over the first n_init + fill + S rows;
    "full":   the ring is full: the new tokens are written to a TAIL of `tail` rows after the ring, attend
              over the whole buffer, and are then copied over the ring's oldest rows (after attention, so
              the tokens this call evicts are still visible to it, as in ReKV);
    "split":  anything else (the one call that wraps the filling ring, a question longer than the tail,
              ReKV's released fixed-distance sink): the context and the new tokens attend separately and
              are merged by log-sum-exp (frameworks/common/split_attention.py).

The host mirrors the counters as ints (`fill`, `next_position`, `evicted`) for bookkeeping and for the
choice of the sink mode; they are never read back from the device.
"""

from __future__ import annotations

from typing import Optional

import torch

from frameworks.common.split_attention import SplitAttention, merge
from frameworks.rekv.rope import RotaryTable, apply_rotary

NEXT, FILL, WRITE = 0, 1, 2  # rows of `meta`


class StaticWindow:
    def __init__(self, num_layers: int, kv_heads: int, head_dim: int, n_local: int, dtype: torch.dtype,
                 device: torch.device, rope: RotaryTable, attention: SplitAttention, sink_positions: str = "window",
                 tail: int = 0):
        self.shape = (num_layers, kv_heads, head_dim)
        self.n_local, self.dtype, self.device, self.rope, self.tail = n_local, dtype, device, rope, tail
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
        rows = self.n_init + self.n_local + self.tail
        self.keys = torch.zeros(layers, rows, heads, dim, dtype=self.dtype, device=self.device)
        self.values = torch.zeros_like(self.keys)  # zeros: the reference kernel multiplies masked rows by 0
        if self.n_init:
            self.values[:, :self.n_init] = self.sink_values

    def clear(self) -> None:
        """Empty the window (new video). The sink stays."""
        self.fill = self.write = self.evicted = 0
        self.next_position = self.n_init
        self.meta.copy_(torch.tensor([self.next_position, 0, 0], dtype=torch.long))

    @property
    def length(self) -> int:
        return self.fill

    @property
    def fixed_distance_sink(self) -> bool:
        """ReKV's released sink rule applies (`LocalWindow.fixed_distance_sink`): tokens were evicted."""
        return self.sink_positions == "released" and self.n_init > 0 and self.evicted > 0

    def phase(self, num_new: int) -> str:
        """How the next step of `num_new` tokens attends: "append" | "full" | "split" (module docstring)."""
        if self.fixed_distance_sink:
            return "split"
        if self.fill + num_new <= self.n_local:
            return "append"
        if self.fill == self.n_local and num_new <= self.tail:
            return "full"
        return "split"

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
    captured region (it derives positions, slots and lengths from `window.meta` on the device).

    commit: write the new tokens into the ring (ingest); False = attend only (the question's retrieval
    pass). host_lengths: slice by the host's counters instead of reading lengths on the device (eager
    use; the reference kernel then needs no key mask). keep_raw: keep pre-RoPE K/V for the block store."""

    def __init__(self, window: StaticWindow, num_new: int, commit: bool = True, keep_raw: bool = True,
                 host_lengths: bool = False):
        if commit and num_new > window.n_local:
            raise ValueError(f"{num_new} new tokens do not fit a window of n_local={window.n_local}")
        self.window, self.num_new, self.commit, self.keep_raw = window, num_new, commit, keep_raw
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.fixed_sink = window.fixed_distance_sink  # decided by the host before this call's tokens arrive
        self.phase = window.phase(num_new)
        meta, device, n_init = window.meta, window.device, window.n_init
        steps = torch.arange(num_new, device=device)
        cos, sin = window.rope.cos_sin(meta[NEXT] + steps)
        self.cos, self.sin = cos[:, None], sin[:, None]          # broadcast over heads (token-major)
        self.rows = n_init + (meta[WRITE] + steps) % window.n_local
        if host_lengths:
            self.context_used, self.ring_used = n_init + window.fill, window.fill
        else:
            self.ring_used = meta[FILL:FILL + 1]
            self.context_used = self.ring_used + n_init
        self.append_used = self.context_used + num_new  # "append": [sink, window, new] is one prefix
        if n_init and not self.fixed_sink:  # sink just before the window's first token
            first = meta[NEXT] - meta[FILL]
            sink_cos, sink_sin = window.rope.cos_sin(first - n_init + torch.arange(n_init, device=device))
            self.sink_cos, self.sink_sin = sink_cos[:, None], sink_sin[:, None]
        if self.fixed_sink:  # released: queries rotated as if at n_local, sink keys unrotated at position 0
            sink_cos, sink_sin = window.rope.cos_sin(torch.full((1,), window.n_local, device=device))
            self.sink_cos, self.sink_sin = sink_cos[:, None], sink_sin[:, None]

    def raw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-RoPE keys and values of the new tokens for every layer: [L, Hkv, S, D] each."""
        return torch.stack(self.keys), torch.stack(self.values)

    def __call__(self, layer, queries, keys, values, scale):
        """queries [Hq, S, D], keys/values [Hkv, S, D] without RoPE (DecoderStack's convention)."""
        if self.keep_raw:
            self.keys.append(keys)
            self.values.append(values)
        window, attend = self.window, self.window.attention
        q_raw, k_raw, v = queries.transpose(0, 1), keys.transpose(0, 1), values.transpose(0, 1)  # token-major
        q, k = apply_rotary(q_raw, self.cos, self.sin), apply_rotary(k_raw, self.cos, self.sin)
        buffer_k, buffer_v, n_init = window.keys[layer], window.values[layer], window.n_init
        if n_init and not self.fixed_sink:
            buffer_k[:n_init] = apply_rotary(window.sink_keys[layer], self.sink_cos, self.sink_sin)
        if self.phase == "append":  # written where they stay (beyond the valid rows: harmless for a question)
            buffer_k.index_copy_(0, self.rows, k)
            buffer_v.index_copy_(0, self.rows, v)
            out, _ = attend(q, buffer_k, buffer_v, scale, causal=True, used=self.append_used)
            return out.to(queries.dtype).reshape(self.num_new, -1)
        if self.phase == "full":
            ring_end = n_init + window.n_local
            buffer_k[ring_end:ring_end + self.num_new] = k
            buffer_v[ring_end:ring_end + self.num_new] = v
            out, _ = attend(q, buffer_k[:ring_end + self.num_new], buffer_v[:ring_end + self.num_new], scale, causal=True)
        else:
            if not self.fixed_sink:
                parts = [attend(q, buffer_k, buffer_v, scale, used=self.context_used)]
            else:
                q_sink = apply_rotary(q_raw, self.sink_cos, self.sink_sin)
                parts = [attend(q_sink, window.sink_keys[layer], window.sink_values[layer], scale),
                         attend(q, buffer_k[n_init:], buffer_v[n_init:], scale, used=self.ring_used)]
            parts.append(attend(q, k, v, scale, causal=True))
            out = merge(parts, dtype=queries.dtype)
        if self.commit:  # after this layer's attention: the rows overwritten are the ones evicted now
            buffer_k.index_copy_(0, self.rows, k)
            buffer_v.index_copy_(0, self.rows, v)
        return out.to(queries.dtype).reshape(self.num_new, -1)

    def advance(self) -> None:
        """Advance the device counters by this step's tokens (part of the captured step)."""
        meta, window, count = self.window.meta, self.window, self.num_new
        fill = torch.clamp(meta[FILL] + count, max=window.n_local)
        meta.copy_(torch.stack([meta[NEXT] + count, fill, (meta[WRITE] + count) % window.n_local]))


class StaticRetrieval(StaticPrefill):
    """The question's retrieval pass over a `StaticWindow`: attend like a pre-fill (nothing written) and
    select each layer's top-k blocks with the mean pre-RoPE query (as `backends.RetrievalPass`)."""

    def __init__(self, window: StaticWindow, num_new: int, store, topk: Optional[int]):
        super().__init__(window, num_new, commit=False, keep_raw=False, host_lengths=True)
        self.blocks, self.topk = store, topk
        self.selected: list[torch.Tensor] = []

    def __call__(self, layer, queries, keys, values, scale):
        self.selected.append(self.blocks.select(layer, queries.mean(dim=1), self.topk))
        return super().__call__(layer, queries, keys, values, scale)
