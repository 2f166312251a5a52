"""The ReKV answer pre-fill (the templated prompt over [sink + retrieved blocks]) as CUDA graphs.

Why: after the retrieval pass and the block loading, the prompt's pre-fill is the last stage before the
first answer token. Eager it costs ~22-39 ms on an H200 at 7B (scripts/gpu/rekv_answer_latency.py,
2026-11-30), for a GPU floor of ~3.5 ms (the weights read once); the gap is taken to be host time of
~28 x 30 small kernels (inferred, not profiled; graphed, the harness measured 10.6-14.2 ms).

What makes it shape-static:
- the answer cache persists across questions at a fixed capacity (the host keeps one, `ReKVHost`), so a
  graph can hold its address; its context length (sink + retrieved blocks, `start`) is a device tensor;
- the prompt is right-padded to a bucket of `bucket` tokens. Pads come after every real token, so causal
  attention keeps them out of the real tokens' outputs; their K/V land in cache rows past the prompt,
  which the decoding steps overwrite one by one before any query can see them (a decoding step attends
  to rows < its own position + 1);
- attention is split (frameworks/common/split_attention.py): the prompt over the context in key chunks
  with the length read on the device, plus the prompt over itself (causal), merged by log-sum-exp;
- the logits of the last REAL token (`last`, a device index) are a graph output.
One graph per (padded length, cache) is captured on the key's second call (the first runs the same code
eagerly; `frameworks/common/cuda_graphs.GraphTable`) and replayed by later questions.
`StaticAnswerPrefill` runs eagerly on CPU and is tested there against the plain
`backends.AnswerAttention`.
"""

from __future__ import annotations

from typing import Optional

import torch

from frameworks.common.cuda_graphs import GraphTable, capture
from frameworks.common.split_attention import SplitAttention
from frameworks.rekv.backends import AnswerCache
from frameworks.rekv.padded_inputs import fill_rows, padded_length, static_inputs
from frameworks.rekv.rope import rotate, rotation_tables


class StaticAnswerPrefill:
    """Backend for `DecoderStack.run` of `num_new` prompt rows written at cache rows start..start+num_new-1
    (`start` [1] int64 on the device): attention over cache rows < start plus the rows themselves, causal."""

    def __init__(self, cache: AnswerCache, start: torch.Tensor, num_new: int, attention: SplitAttention, splits: int):
        self.cache, self.attention = cache, attention
        self.rows = start + torch.arange(num_new, device=start.device)
        self.cos, self.sin = rotation_tables(cache.rope, self.rows)
        self.plan = attention.plan_chunks(cache.keys.shape[2], splits, start, start.device)

    def __call__(self, layer, queries, keys, values, scale):
        """queries [Hq, S, D], keys/values [Hkv, S, D] without RoPE -> [S, Hq·D]."""
        cache, attention = self.cache, self.attention
        q = rotate(queries.transpose(0, 1), self.cos, self.sin)   # [S, Hq, D]
        k = rotate(keys.transpose(0, 1), self.cos, self.sin)      # [S, Hkv, D]
        v = values.transpose(0, 1)
        own = attention(q, k, v, scale, causal=True)
        context = attention.context(q, cache.keys[layer].transpose(0, 1), cache.values[layer].transpose(0, 1),
                                    scale, self.plan)
        out = attention.merge_chunks(context, [own], queries.dtype)
        cache.keys[layer].index_copy_(1, self.rows, k.transpose(0, 1))
        cache.values[layer].index_copy_(1, self.rows, v.transpose(0, 1))
        return out


class GraphedAnswerPrefill:
    """`prefill(cache, hidden)` -> logits [vocab] of the prompt's last token; writes the prompt's K/V.
    Graphs per (padded length, cache) in a `GraphTable` (captured on a key's second call)."""

    bucket = 16       # prompts are padded to a multiple of this many tokens
    max_graphs = 8

    def __init__(self, stack, attention: SplitAttention, cuda_graph: bool = True, warmups: int = 2):
        self.stack, self.attention, self.warmups = stack, attention, warmups
        self.graphs = GraphTable("ReKV answer pre-fill", self.max_graphs, cuda_graph)
        self.replays = 0

    @property
    def captures(self) -> int:
        return self.graphs.captures

    def padded(self, count: int) -> int:
        return padded_length(count, self.bucket)

    @torch.no_grad()
    def prefill(self, cache: AnswerCache, hidden: torch.Tensor) -> Optional[torch.Tensor]:
        """Pre-fill `hidden` [P, hidden] after the cache's context; None when the cache lacks the room for
        the padded prompt or has no context (the caller then runs the plain path)."""
        padded = self.padded(hidden.shape[0])
        if cache.length == 0 or cache.length + padded > cache.keys.shape[2]:
            return None
        key = (padded, tuple(cache.keys.shape), cache.keys.data_ptr(), hidden.dtype)
        entry = (self.graphs.get(key, lambda pool: self._record(cache, hidden, padded, pool))
                 if self._graphable(hidden.device) else None)
        if entry is None:
            return self._run(cache, self._inputs(cache, hidden, padded))
        graph, inputs, logits = entry
        self._fill(inputs, cache, hidden)
        graph.replay()
        self.replays += 1
        return logits.clone()

    @staticmethod
    def _graphable(device: torch.device) -> bool:
        return device.type == "cuda"

    def _inputs(self, cache: AnswerCache, hidden: torch.Tensor, padded: int) -> tuple[torch.Tensor, ...]:
        inputs = static_inputs(hidden, padded, scalars=2)  # rows, context length, last real row
        self._fill(inputs, cache, hidden)
        return inputs

    @staticmethod
    def _fill(inputs, cache: AnswerCache, hidden: torch.Tensor) -> None:
        """Static inputs: embeddings (pads zero), the context length, the last real row (scalar fills)."""
        rows, start, last = inputs
        fill_rows(rows, hidden)
        start.fill_(cache.length)
        last.fill_(hidden.shape[0] - 1)

    def _run(self, cache: AnswerCache, inputs) -> torch.Tensor:
        rows, start, last = inputs
        splits = self.attention.splits(rows.shape[0], self.stack.q_heads, self.stack.kv_heads, cache.keys.shape[2],
                                       rows.device)
        backend = StaticAnswerPrefill(cache, start, rows.shape[0], self.attention, splits)
        out = self.stack.run(rows, backend, fused=True)
        return self.stack.logits(out.index_select(0, last))[0]

    def _record(self, cache: AnswerCache, hidden: torch.Tensor, padded: int, pool):
        inputs = self._inputs(cache, hidden, padded)
        # warm-ups write the prompt rows of the cache, which the replay that follows rewrites: no restore
        graph, logits = capture(lambda: self._run(cache, inputs), lambda: None, hidden.device, pool, self.warmups)
        return graph, (graph, inputs, logits)
