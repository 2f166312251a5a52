"""The TOKENS stage of a LLaVA-style host (projector -> optional 2x pool -> TOKENS methods) as one CUDA graph.

    stage = GraphedTokenStage(projector, pool_2x, compression, timer, graph=True)
    tokens = stage.project(selected)                         # projector (+ pool) only, timed "projector"
    kept, indices = stage(selected, TokenSide(grid=(14, 14), frame_offset=n))   # the frame's tokens

Why: at one frame per call the stage is ~50 small kernels (projector 3, pool 4, STC-Pruner ~40) on
[1, 729, D] inputs (projector 0.06-0.17 ms, pruner 0.24-1.4 ms per frame on an H200, docs/speed/h200.md
(4)), mostly launch time by inference (not profiled; graphed, the stage measured 4.7x faster at one frame
per call, docs/rekv/token-stage-graph.md). A replay is one launch.

How (same pattern as the ViT graph, stc/cacher/graph.py):
- Eager everywhere except CUDA inputs with grad disabled, `graph=True`, and a graph-safe TOKENS stage
  (`HostCompression.tokens_graph_safe`: every method `graph_safe`, no tower side information, a fixed
  count per frame). A requested graph that the methods do not allow warns once and runs eager.
- A call is split into a host half (`HostCompression.begin_tokens`: validation, counters, one hashable
  plan per method) and a device half (projector, pool, `run_tokens`). The key is (input shape, dtype,
  device, plans). The first call of a new input shape runs the plain eager path (it learns the token
  shape the plans need); the first call of a new key runs the device half eagerly; the second captures
  it (2 warm-ups on a side stream, the methods' state buffers saved and restored around them) and
  replays; later calls copy the input into the static buffer, replay, and return CLONES of the static
  outputs. Keys seen once are never captured (STC-Pruner's history length is in its plan and only
  settles after `history_window` frames of a stream; the early keys recur at the start of the next
  stream, where they are captured). All graphs share one memory pool; they never run concurrently.
- Any capture failure disables graphing for this object with one warning; calls go eager.

Timing: the eager path records "projector" and "pruner" (TOKENS methods) like the hosts always did; a
graph call (capture, replay, or the eager device half of a new key) is ONE interval, recorded under
"pruner" when the host has TOKENS methods (projector + pool + methods) and "projector" otherwise.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from frameworks.common.compression import HostCompression
from frameworks.common.cuda_graphs import capture
from frameworks.common.timing import EventTimer
from stc.compression import TokenSide


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    static_input: torch.Tensor
    static_output: tuple


class GraphedTokenStage:
    """Projector -> pool -> TOKENS methods of one host stream; see the module docstring.

    `pool`: the grid pooling after the projector (`pool_2x`), or None. `graph`: capture CUDA graphs when
    possible. `max_graphs`: captured graphs kept (least recently used dropped first)."""

    def __init__(self, projector: nn.Module, pool: Optional[Callable[[torch.Tensor], torch.Tensor]],
                 compression: HostCompression, timer: EventTimer, graph: bool = True, max_graphs: int = 128):
        self.projector, self.pool, self.compression, self.timer = projector, pool, compression, timer
        self.graph = graph
        self.enabled = graph and compression.tokens_graph_safe
        self.max_graphs = max_graphs
        self.graph_calls = self.captures = self.replays = 0
        self._warned = False
        self._token_shapes: dict[tuple, tuple[int, int]] = {}  # input key -> (T, D) into the TOKENS methods
        self._seen: set[tuple] = set()
        self._graphs: OrderedDict[tuple, _Captured] = OrderedDict()
        self._pool_handle = None

    @property
    def stage_name(self) -> str:
        """Timer stage of a graph call: "pruner" with TOKENS methods, else "projector"."""
        return "pruner" if self.compression.token_methods else "projector"

    def stats(self) -> dict:
        """graphed: calls take the graph path (CUDA, graph-safe, no capture failure so far)."""
        return {"graphed": self.enabled and self.graph_calls > 0, "captures": self.captures, "replays": self.replays}

    # ---- calls ---------------------------------------------------------------------------------
    def project(self, selected: torch.Tensor) -> torch.Tensor:
        """Vision features [F, P, C] -> the frame's tokens before compression [F, T, D] (timed "projector")."""
        with self.timer.stage("projector"):
            return self._project(selected)

    def __call__(self, selected: torch.Tensor, side: TokenSide):
        """Vision features [F, P, C] -> (tokens after the TOKENS methods, indices or None)."""
        if not self._graphable(selected):
            return self._eager(selected, side)
        self.graph_calls += 1
        input_key = (tuple(selected.shape), selected.dtype, selected.device)
        token_shape = self._token_shapes.get(input_key)
        if token_shape is None:  # first call of this shape: plain eager, learns the token shape
            return self._eager(selected, side, learn=input_key)
        plans = self.compression.begin_tokens((selected.shape[0], *token_shape), selected.device, side)
        key = (input_key, plans)
        with self.timer.stage(self.stage_name):
            if key not in self._graphs and key in self._seen:
                self._capture(key, selected, side, plans)
            if key in self._graphs:
                return self._replay(key, selected)
            self._seen.add(key)
            return self._device_half(selected, side, plans)

    # ---- helpers -------------------------------------------------------------------------------
    def _project(self, selected: torch.Tensor) -> torch.Tensor:
        tokens = self.projector(selected)
        return self.pool(tokens) if self.pool is not None else tokens

    def _eager(self, selected, side, learn=None):
        """The hosts' plain path: projector (+ pool), then `compress_tokens`, timed as two stages."""
        tokens = self.project(selected)
        if learn is not None:
            self._token_shapes[learn] = tuple(tokens.shape[1:])
        if not self.compression.token_methods:
            return tokens, None
        with self.timer.stage("pruner"):
            return self.compression.compress_tokens(tokens, side)

    def _device_half(self, selected, side, plans):
        return self.compression.run_tokens(self._project(selected), side, plans)

    def _graphable(self, selected: torch.Tensor) -> bool:
        if not (self.graph and isinstance(selected, torch.Tensor) and selected.is_cuda):
            return False
        if not self.compression.tokens_graph_safe and not self._warned:
            self._warned = True
            names = ", ".join(m.name for m in self.compression.token_methods)
            warnings.warn(f"token-stage CUDA graph: the TOKENS methods ({names}) are not graph-safe "
                          "(a host sync, tower side information or a variable count per frame); they run eager")
        return self.enabled and not torch.is_grad_enabled()

    def _replay(self, key, selected):
        self._graphs.move_to_end(key)
        captured = self._graphs[key]
        captured.static_input.copy_(selected)
        captured.graph.replay()
        self.replays += 1
        return tuple(x.clone() if isinstance(x, torch.Tensor) else x for x in captured.static_output)

    def _capture(self, key, selected, side, plans) -> None:
        device = selected.device
        buffers = self.compression.token_state_buffers()
        saved = [buffer.clone() for buffer in buffers]

        def restore():
            for buffer, value in zip(buffers, saved):
                buffer.copy_(value)

        try:
            with torch.cuda.device(device):
                with torch.inference_mode(False):  # a normal tensor: later copies into it work in any mode
                    static_input = torch.empty_like(selected)
                static_input.copy_(selected)
                if self._pool_handle is None:
                    self._pool_handle = torch.cuda.graph_pool_handle()
                # the methods write their state during the warm-ups: `restore` puts it back after each
                graph, static_output = capture(lambda: self._device_half(static_input, side, plans), restore,
                                               device, self._pool_handle)
        except Exception as error:  # any capture problem: eager from now on, said once
            self.enabled = False
            self._graphs.clear()
            warnings.warn(f"token-stage CUDA graph capture failed ({error!r}); projector and TOKENS methods "
                          "run eager from now on")
            return
        self._graphs[key] = _Captured(graph, static_input, static_output)
        self.captures += 1
        while len(self._graphs) > self.max_graphs:
            self._graphs.popitem(last=False)
