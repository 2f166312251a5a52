"""The encoding-time context of every layer: init sink + the newest <= n_local video tokens.

Positions (why pruning needs no bookkeeping): the attended window is [init sink, local tokens, new
tokens] with CONTIGUOUS positions — init token j at j, then the window's tokens in order — exactly
ReKV's re-indexed RoPE. While the stream fits in the window these are the true absolute positions, so a
short stream is bit-for-bit the plain model. Implementation: local keys are rotated once, at their
absolute stream position, when they arrive; RoPE scores depend only on position differences, so that is
identical to re-rotating the whole window at window positions every call. Only the n_init sink keys
are re-rotated per call, to sit just before the window's first token (a few dozen rows).
`sink_positions="released"` keeps that until the first eviction and then switches to the released
rule (`fixed_distance_sink`; the attention lives in backends.WindowPrefill).

Storage: one buffer [layers, kv_heads, capacity, head_dim] for keys (rotated) and one for values. Live
data occupies slots [start, end); the rotated sink is written to [start - n_init, start) before each call
so that [sink, local, new] is one contiguous view (no concatenation of 15k tokens per layer per call).
When the tail is full the live region is moved to the front (amortised), or the buffer grows.
"""

from __future__ import annotations

import torch

from frameworks.rekv.rope import RotaryTable, apply_rotary


class LocalWindow:
    def __init__(self, num_layers: int, kv_heads: int, head_dim: int, n_local: int,
                 dtype: torch.dtype, device: torch.device, rope: RotaryTable, sink_positions: str = "window"):
        self.shape = (num_layers, kv_heads, head_dim)
        self.n_local, self.dtype, self.device, self.rope = n_local, dtype, device, rope
        self.sink_positions = sink_positions  # "window" | "released" (see ReKVConfig.sink_positions)
        self.init_keys = self.init_values = None  # [L, Hkv, n_init, D], keys WITHOUT RoPE
        self.keys = self.values = None
        self.n_init = 0
        self.clear()

    # ---- lifetime ------------------------------------------------------------------------------
    def set_init(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Install the init sink (pre-RoPE keys [L, Hkv, n_init, D]) and start an empty window."""
        self.init_keys, self.init_values = keys, values
        self.n_init = keys.shape[2]
        self.clear()

    def clear(self) -> None:
        """Empty the window (new video). The sink stays; buffers are kept for reuse."""
        self.start = self.end = self.n_init
        self.first_position = self.n_init  # absolute stream position of slot `start`
        self.evicted = 0

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def fixed_distance_sink(self) -> bool:
        """Released positions apply: the stream has left the window (tokens were evicted), so the
        released code attends to the sink as a separate source at distance n_local."""
        return self.sink_positions == "released" and self.n_init > 0 and self.first_position > self.n_init

    @property
    def next_position(self) -> int:
        """Absolute position of the next token appended to the stream."""
        return self.first_position + self.length

    # ---- per call ------------------------------------------------------------------------------
    def prepare(self, num_new: int) -> torch.Tensor:
        """Make room for `num_new` tokens, write the rotated sink in front of the window, and return the
        absolute positions [num_new] of the new tokens (the caller rotates queries/keys with them)."""
        self._ensure_room(num_new)
        if self.n_init:
            sink_positions = torch.arange(self.n_init, device=self.device) + (self.first_position - self.n_init)
            cos, sin = self.rope.cos_sin(sink_positions)
            lo = self.start - self.n_init
            self.keys[:, :, lo:self.start] = apply_rotary(self.init_keys, cos, sin)
            self.values[:, :, lo:self.start] = self.init_values
        return torch.arange(num_new, device=self.device) + self.next_position

    def context(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new tokens' rotated keys/values [Hkv, S, D] after the window and return the views
        [Hkv, n_init + length + S, D] = [sink, local, new]. Not committed until `commit`."""
        count = keys.shape[1]
        self.keys[layer, :, self.end:self.end + count] = keys
        self.values[layer, :, self.end:self.end + count] = values
        lo, hi = self.start - self.n_init, self.end + count
        return self.keys[layer, :, lo:hi], self.values[layer, :, lo:hi]

    def commit(self, num_new: int) -> None:
        """Keep the tokens written by the last `context` calls and slide the window to n_local tokens."""
        self.end += num_new
        overflow = self.length - self.n_local
        if overflow > 0:
            self.start += overflow
            self.first_position += overflow
            self.evicted += overflow

    # ---- storage -------------------------------------------------------------------------------
    def _ensure_room(self, num_new: int) -> None:
        capacity = 0 if self.keys is None else self.keys.shape[2]
        if self.end + num_new <= capacity:
            return
        need = self.n_init + self.length + num_new
        if self.keys is None or 2 * need > capacity:
            new_capacity = max(2 * need, 256)
            layers, heads, dim = self.shape
            keys = torch.empty(layers, heads, new_capacity, dim, dtype=self.dtype, device=self.device)
            values = torch.empty_like(keys)
        else:
            keys, values = self.keys, self.values
        live = slice(self.start, self.end)
        if self.length:
            # clone: source and destination may overlap when compacting in place
            moved_k, moved_v = self.keys[:, :, live].clone(), self.values[:, :, live].clone()
            keys[:, :, self.n_init:self.n_init + self.length] = moved_k
            values[:, :, self.n_init:self.n_init + self.length] = moved_v
        self.keys, self.values = keys, values
        self.start, self.end = self.n_init, self.n_init + (live.stop - live.start)
