"""Greedy decoding steps of a ReKV answer as a CUDA graph per answer cache (issue 14 §2, answer path).

Why: a decoding step is one token through 28 layers + lm_head; eager, it costs ~20 ms for ~4 ms of weight
reads, the rest taken to be host time (inferred, not profiled: graphed, the same kernels take 6.5-8 ms).
Everything a step needs is shape-static once the answer cache exists: the token id and the cache length
live in device tensors, the new key/value is written at the device position, and
the attention over [sink + retrieved blocks + prompt + generated] reads the length on the device (split
attention, flash-decoding chunks: frameworks/common/split_attention.py). The step ends with argmax into
the static token buffer and advances the position, so consecutive replays need no host->device copy;
the host reads one int per token (to stop at an end-of-sequence token).

`StaticDecode` is the per-layer backend (runs eagerly on CPU, tested against `backends.AnswerAttention`);
`GraphedDecoder.generate` captures it on CUDA (`frameworks/common/cuda_graphs.py`; warm-ups really run:
the token and position are put back after each, the cache column they write is rewritten by the real
step). The graph holds the cache's address and reads the token and position from its static inputs, so
with the host's persistent answer cache ONE capture serves every later answer (each answer only fills
the token and position: two scalar fills). Only `AnswerCache` (one length for all layers) is served;
the layered cache of variable-size blocks / decode-time key selection stays eager.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Callable

import torch

from frameworks.common.cuda_graphs import capture, failure_text
from frameworks.common.split_attention import SplitAttention
from frameworks.rekv.backends import AnswerCache
from frameworks.rekv.rope import rotate, rotation_tables


class StaticDecode:
    """Backend for `DecoderStack.run` of ONE new token at device position `position` ([1] int64)."""

    def __init__(self, cache: AnswerCache, position: torch.Tensor, attention: SplitAttention, splits: int):
        self.cache, self.position, self.attention = cache, position, attention
        self.cos, self.sin = rotation_tables(cache.rope, position)
        self.plan = attention.plan_chunks(cache.keys.shape[2], splits, position + 1, position.device)

    def __call__(self, layer, queries, keys, values, scale):
        """queries [Hq, 1, D], keys/values [Hkv, 1, D] without RoPE -> [1, Hq·D]."""
        cache = self.cache
        q = rotate(queries.transpose(0, 1), self.cos, self.sin)                      # [1, Hq, D]
        k = rotate(keys.transpose(0, 1), self.cos, self.sin)                         # [1, Hkv, D]
        cache.keys[layer].index_copy_(1, self.position, k.transpose(0, 1))
        cache.values[layer].index_copy_(1, self.position, values)
        context_k, context_v = cache.keys[layer].transpose(0, 1), cache.values[layer].transpose(0, 1)  # [cap, Hkv, D]
        chunks = self.attention.context(q, context_k, context_v, scale, self.plan)
        return self.attention.merge_chunks(chunks, [], queries.dtype)


class GraphedDecoder:
    """Greedy tokens after the first one, from an `AnswerCache`; on CUDA one captured graph per answer
    cache, replayed by every later answer (the host keeps its answer cache across questions)."""

    # A capture costs about three eager steps (two warm-ups + the capture), so it is made only for an
    # answer of at least this many steps (multiple-choice letters decode eagerly on the static path);
    # once a graph exists, answers of any length replay it.
    min_graph_steps = 4
    max_graphs = 4  # graphs kept (least recently used dropped): one per answer cache in practice

    def __init__(self, stack, attention: SplitAttention, cuda_graph: bool = True):
        self.stack, self.attention, self.cuda_graph = stack, attention, cuda_graph
        self.captures = self.replays = 0
        self.disabled = False
        # cache key -> (token [1], position [1], splits, replay or None): the static inputs of a cache's graph
        self.graphs: OrderedDict[tuple, tuple] = OrderedDict()

    def _step(self, cache: AnswerCache, token: torch.Tensor, position: torch.Tensor, splits: int) -> None:
        """token [1] -> next greedy token (in place), position += 1 (device); writes the token's K/V."""
        hidden = self.stack.embed(token, token.device)
        hidden = self.stack.run(hidden, StaticDecode(cache, position, self.attention, splits), fused=True)
        token.copy_(torch.argmax(self.stack.logits(hidden[-1])).reshape(1))
        position.add_(1)

    @torch.no_grad()
    def generate(self, cache: AnswerCache, first: int, steps: int, stop: Callable[[int], bool]) -> list[int]:
        """Feed `first` (already chosen) and generate up to `steps` more greedy tokens, stopping before
        a token for which `stop` is true. The cache's host length is advanced by the tokens fed."""
        if steps <= 0:  # a one-token answer: nothing to decode, and no graph to capture (it costs ~3 steps)
            return []
        device = cache.keys.device
        if cache.length + steps > cache.keys.shape[2]:
            raise RuntimeError(f"answer cache capacity {cache.keys.shape[2]} exceeded")
        key = (cache.keys.data_ptr(), tuple(cache.keys.shape), cache.keys.dtype, device)
        entry = self.graphs.get(key)
        if entry is None:
            splits = self.attention.splits(1, self.stack.q_heads, self.stack.kv_heads, cache.keys.shape[2], device)
            entry = (torch.zeros(1, dtype=torch.long, device=device), torch.zeros(1, dtype=torch.long, device=device),
                     splits, None)
        token, position, splits, run = entry
        token.fill_(first)
        position.fill_(cache.length)
        if run is None and self._graphable(device) and steps >= self.min_graph_steps:
            run = self._graph(cache, token, position, splits)
        if self._graphable(device):  # keep the static inputs (and graph) of this cache
            self.graphs[key] = (token, position, splits, run)
            self.graphs.move_to_end(key)
            while len(self.graphs) > self.max_graphs:
                self.graphs.popitem(last=False)
        out: list[int] = []
        for _ in range(steps):
            if run is not None:
                run()
                self.replays += 1
            else:
                self._step(cache, token, position, splits)
            cache.length += 1
            value = int(token.item())  # the one sync per token: stop at end of sequence
            if stop(value):
                break
            out.append(value)
        return out

    def _graphable(self, device: torch.device) -> bool:
        return self.cuda_graph and device.type == "cuda" and not self.disabled

    def _graph(self, cache, token, position, splits):
        saved = (token.clone(), position.clone())

        def restore():  # warm-ups really decode; the cache column they write is rewritten by the real step
            token.copy_(saved[0])
            position.copy_(saved[1])

        try:
            graph, _ = capture(lambda: self._step(cache, token, position, splits), restore, token.device)
        except Exception as error:  # noqa: BLE001 - decode eagerly, say so once
            self.disabled = True
            warnings.warn(f"ReKV decoding steps not graphed ({failure_text(error)}); running eager",
                          RuntimeWarning, stacklevel=3)
            return None
        self.captures += 1
        return graph.replay
