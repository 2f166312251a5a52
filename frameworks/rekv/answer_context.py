"""Answer attention with per-layer context lengths and decode-time key selection (CONTEXT methods).

Used instead of `backends.AnswerCache/AnswerAttention` only when a stream needs it, so the plain path is
untouched:
  - variable-size frame blocks (a TOKENS method keeping a different count per frame): every layer
    retrieves its own blocks, so each layer's context has its own length; positions are re-indexed from
    0 per layer over [sink + that layer's blocks], exactly as the fixed path does with equal lengths;
  - CONTEXT methods with a `decode_keys` hook (DyCoke's dynamic KV pruning): at every decoding step
    (one new token) the hook may restrict the keys a layer attends to.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from frameworks.rekv.attention import prefix_causal_attention
from frameworks.rekv.backends import AnswerCache
from frameworks.rekv.rope import apply_rotary

KeySelector = Callable[[int, torch.Tensor, torch.Tensor, float], Optional[torch.Tensor]]


class LayeredAnswerCache(AnswerCache):
    """`AnswerCache` whose layers hold contexts of different lengths (`lengths[layer]`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lengths = [0] * self.keys.shape[0]

    def loaded_layers(self, counts: list[int]) -> None:
        self.lengths = list(counts)
        self.length = max(counts) if counts else 0

    def advance(self, count: int) -> None:
        self.lengths = [length + count for length in self.lengths]
        self.length = max(self.lengths)


class LayeredAnswerAttention:
    """Prompt pre-fill / one decoding step over a `LayeredAnswerCache`; call `cache.advance(S)` after."""

    def __init__(self, cache: LayeredAnswerCache, num_new: int, select_keys: Optional[KeySelector] = None):
        if max(cache.lengths) + num_new > cache.keys.shape[2]:
            raise RuntimeError(f"answer cache capacity {cache.keys.shape[2]} exceeded")
        self.cache, self.num_new, self.select_keys, self.masks = cache, num_new, select_keys, {}
        self.rotations: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _rotation(self, start: int):
        if start not in self.rotations:
            positions = torch.arange(self.num_new, device=self.cache.device) + start
            self.rotations[start] = self.cache.rope.cos_sin(positions)
        return self.rotations[start]

    def __call__(self, layer, queries, keys, values, scale):
        cache = self.cache
        lo = cache.lengths[layer]
        hi = lo + self.num_new
        cos, sin = self._rotation(lo)
        cache.keys[layer, :, lo:hi] = apply_rotary(keys, cos, sin)
        cache.values[layer, :, lo:hi] = values
        q = apply_rotary(queries, cos, sin)
        context_keys, context_values = cache.keys[layer, :, :hi], cache.values[layer, :, :hi]
        if self.num_new == 1 and self.select_keys is not None:
            keep = self.select_keys(layer, q, context_keys, scale)
            if keep is not None:
                context_keys, context_values = context_keys[:, keep], context_values[:, keep]
        return prefix_causal_attention(q, context_keys, context_values, scale, self.masks)
