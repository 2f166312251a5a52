"""The ReKV streaming pre-fill step (a chunk of new tokens through every decoder layer) as CUDA graphs.

Why: one frame's pre-fill at 7B is ~28 layers x ~40 kernels; eager, the step took 22-29 ms on an H200
against a floor of ~3.3 ms (the 13 GB of decoder weights read once) — host time of the Python path.
Graphed it takes 7-9 ms (docs/rekv/graphed-step.md has the kernel profile). With the window in fixed
buffers whose lengths live on the device (`static_window.StaticWindow`), the whole step is shape-static
for a given token count, so one graph per (token count, sink mode) replays every call of a stream, and
of later streams (a reset only rewrites `meta`).

Capture: the second call of a key (the first runs eagerly) is captured (`frameworks/common/cuda_graphs.py`:
`capture` and the `GraphTable` policy), then replays. Warm-ups really run the step, so what they change
is put back after each: the device counters (`meta`) and the ring rows the step overwrites (saved
before, restored after); the sink rows are rewritten identically by every run. Later calls copy the
input into the graph's static buffer, replay, and advance the host's counter mirrors. The pre-RoPE K/V
for the block store are graph outputs, valid until the next replay
(the host writes them to the store right after).

The question's retrieval pass (`select`) is graphed the same way: right-padded to a bucket of tokens,
scored over the whole key buffer of the block store with the live blocks counted on the device
(`static_window.StaticRetrieval`), so questions of different lengths and a growing store replay one
graph (until the store's key buffer is reallocated, which doubles it).

Not graphed (the same step runs eagerly on the static window): CPU tensors, `cuda_graph=False`, or a
window without sink tokens (an empty context at the first call). A capture error disables that table's
graphs (steps or questions) with one warning.
"""

from __future__ import annotations

from typing import Callable

import torch

from frameworks.common.cuda_graphs import GraphTable, capture
from frameworks.rekv.padded_inputs import fill_rows, padded_length, static_inputs
from frameworks.rekv.static_window import StaticPrefill, StaticRetrieval, StaticWindow

Step = Callable[[torch.Tensor, StaticPrefill], None]  # (inputs_embeds [S, hidden], backend) -> runs the stack


class GraphedSteps:
    """The streaming pre-fill steps and the question's retrieval pass of one host, graphed per key
    (`GraphTable`: captured on a key's second call, at most `max_graphs` kept per table)."""

    max_graphs = 16
    question_bucket = 16  # retrieval passes are padded to a multiple of this many tokens

    def __init__(self, window: StaticWindow, run_stack: Step, cuda_graph: bool = True, warmups: int = 2):
        self.window, self.run_stack, self.warmups = window, run_stack, warmups
        graphs = cuda_graph and window.device.type == "cuda"
        self.step_graphs = GraphTable("ReKV pre-fill step", self.max_graphs, graphs)
        self.question_graphs = GraphTable("ReKV retrieval pass", self.max_graphs, graphs)
        self.replays = 0

    @property
    def captures(self) -> int:
        return self.step_graphs.captures + self.question_graphs.captures

    def __call__(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-fill `hidden` [S, hidden] into the window; returns pre-RoPE K/V [L, Hkv, S, D] each."""
        count = hidden.shape[0]
        key = (count, self.window.fixed_distance_sink, hidden.dtype)
        entry = self.step_graphs.get(key, lambda pool: self._record_step(hidden, pool)) if self.window.n_init else None
        if entry is None:  # not graphed (yet, or at all): the same step, eagerly
            raw = self._step(hidden, host_lengths=True)
        else:
            graph, static_in, raw = entry
            static_in.copy_(hidden)
            graph.replay()
            self.replays += 1
        self.window.advanced(count)
        return raw

    def select(self, hidden: torch.Tensor, store, topk: int) -> torch.Tensor:
        """The question's retrieval pass (`hidden` [S, hidden] embeddings, nothing written): every layer's
        top-k block indices [L, topk], ascending. The question is right-padded to a multiple of
        `question_bucket` and the store read through its whole key buffer (`StaticRetrieval`), so one
        graph per (padded length, k, key buffer) serves every question. The result is a copy (a graph's
        output is overwritten by its next replay)."""
        padded = padded_length(hidden.shape[0], self.question_bucket)
        key = (padded, topk, tuple(store.rep_keys.shape), store.rep_keys.data_ptr(), self.window.fixed_distance_sink,
               hidden.dtype)
        record = lambda pool: self._record_question(hidden, padded, store, topk, pool)  # noqa: E731
        entry = self.question_graphs.get(key, record) if self.window.n_init else None
        if entry is None:
            return self._question(self._question_inputs(hidden, padded, store), store, topk)
        graph, inputs, selected = entry
        self._fill_question(inputs, hidden, store)
        graph.replay()
        self.replays += 1
        return selected.clone()

    def _question_inputs(self, hidden: torch.Tensor, padded: int, store) -> tuple[torch.Tensor, ...]:
        inputs = static_inputs(hidden, padded, scalars=2)  # rows, real-token count, live blocks
        self._fill_question(inputs, hidden, store)
        return inputs

    @staticmethod
    def _fill_question(inputs, hidden: torch.Tensor, store) -> None:
        """Static inputs of a question pass: embeddings (pads zero), real-token count, live blocks (no
        host->device copy of data: two scalar fills)."""
        rows, count, blocks = inputs
        fill_rows(rows, hidden)
        count.fill_(hidden.shape[0])
        blocks.fill_(store.num_blocks)

    def _question(self, inputs, store, topk: int) -> torch.Tensor:
        rows, count, blocks = inputs
        backend = StaticRetrieval(self.window, rows.shape[0], store, topk, count, blocks)
        self.run_stack(rows, backend)
        return torch.stack(backend.selected)

    def _record_question(self, hidden: torch.Tensor, padded: int, store, topk: int, pool):
        inputs = self._question_inputs(hidden, padded, store)
        # the pass writes nothing but the sink rows, rewritten identically from `meta`: nothing to restore
        graph, selected = capture(lambda: self._question(inputs, store, topk), lambda: None, self.window.device,
                                  pool, self.warmups)
        return graph, (graph, inputs, selected)

    def _step(self, hidden: torch.Tensor, host_lengths: bool) -> tuple[torch.Tensor, torch.Tensor]:
        backend = StaticPrefill(self.window, hidden.shape[0], host_lengths=host_lengths)
        self.run_stack(hidden, backend)
        backend.advance()
        return backend.raw()

    def _record_step(self, hidden: torch.Tensor, pool):
        window = self.window
        rows = torch.tensor(window.slots(hidden.shape[0]), device=window.device)
        saved = (window.meta.clone(), window.keys[:, rows].clone(), window.values[:, rows].clone())

        def restore():
            window.meta.copy_(saved[0])
            window.keys[:, rows] = saved[1]
            window.values[:, rows] = saved[2]

        static_in = hidden.clone()
        graph, raw = capture(lambda: self._step(static_in, host_lengths=False), restore, window.device, pool,
                             self.warmups)
        return graph, (graph, static_in, raw)
