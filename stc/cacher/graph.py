"""CUDA-graph replay of selective frames.

At batch 1 a selective frame is ~20 small kernels per layer: on a fast GPU host launch time, not
FLOPs, dominates, and the eager selective frame can be slower than a dense one (stc-method.md §2.7).
The selective op graph is shape-static (k is fixed, reference buffers are written in place), so one
captured graph per (streams, input shape, dtype, kwargs) replays it with a single launch.

How it works: the runner replaces the tower's `forward` (instance attribute; removed on detach).
- Calls that are not graphable run eager: CPU tensors, grad enabled, extra positional args, any row
  that is a reference frame, a stream appearing twice in the batch.
- The first selective call of a new key runs eager (it IS the frame), then the runner captures a graph
  by re-running the same frame (2 warm-ups on a side stream + capture). Selective frames never write
  references, so this has no side effects except frame counters, which are snapshotted and restored.
- Later calls copy the pixels into the static input, replay, advance the counters and return CLONES
  of the static outputs (a clone of the outputs costs microseconds; aliasing outputs that the next
  call overwrites is a trap upstream users fell into).
- Any capture failure disables the runner for this handle with one warning; calls go eager.
"""

from __future__ import annotations

import copy
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

from stc.cacher.plan import CallPlan, commit_frames


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    static_input: torch.Tensor
    static_output: Any
    plan: CallPlan
    num_tokens: int


def clone_outputs(obj):
    """Deep-clone the tensors of a (nested) model output, keeping its container types."""
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(clone_outputs(x) for x in obj)
    if isinstance(obj, dict):
        cloned = copy.copy(obj)
        for key in list(obj.keys()):
            cloned[key] = clone_outputs(obj[key])
        return cloned
    return obj


class CudaGraphRunner:
    """Replaces `handle.tower.forward`; see the module docstring. `max_graphs` bounds memory (LRU)."""

    def __init__(self, handle, max_graphs: int = 32):
        self.handle = handle
        self.tower = handle.tower
        self.max_graphs = max_graphs
        self.enabled = True
        self.replays = 0
        self.captures = 0
        self._graphs: OrderedDict[tuple, _Captured] = OrderedDict()
        self._eager = type(self.tower).forward.__get__(self.tower)
        self.tower.forward = self.forward

    def uninstall(self) -> None:
        if self.tower.__dict__.get("forward") == self.forward:
            del self.tower.forward
        self._graphs.clear()

    def forward(self, pixel_values=None, *args, **kwargs):
        if not self._graphable(pixel_values, args):
            return self._eager(pixel_values, *args, **kwargs)
        states = self.handle.row_states(pixel_values.shape[0])
        if not self._all_selective(states):
            return self._eager(pixel_values, **kwargs)
        key = self._key(states, pixel_values, kwargs)
        captured = self._graphs.get(key)
        if captured is None:
            output = self._eager(pixel_values, **kwargs)
            if self.handle._plan is not None and self.handle._plan.all_selective_from_store:
                self._capture(key, pixel_values, kwargs, states)
            return output
        self._graphs.move_to_end(key)
        captured.static_input.copy_(pixel_values)
        captured.graph.replay()
        commit_frames(captured.plan, captured.num_tokens)
        self.replays += 1
        return clone_outputs(captured.static_output)

    # ---- helpers -------------------------------------------------------------------------------
    def _graphable(self, pixel_values, args) -> bool:
        return (
            self.enabled
            and not args
            and isinstance(pixel_values, torch.Tensor)
            and pixel_values.is_cuda
            and not torch.is_grad_enabled()
        )

    def _all_selective(self, states) -> bool:
        interval = self.handle.config.cache_interval
        if len({s.id for s in states}) != len(states):
            return False
        return all(s.has_reference and s.frame_idx % interval != 0 for s in states)

    @staticmethod
    def _key(states, pixel_values, kwargs) -> tuple:
        frozen = tuple(sorted((k, v if isinstance(v, (bool, int, float, str, type(None))) else id(v)) for k, v in kwargs.items()))
        return (tuple((s.id, s.version) for s in states), tuple(pixel_values.shape), pixel_values.dtype, pixel_values.device, frozen)

    def _capture(self, key, pixel_values, kwargs, states) -> None:
        snapshot = [(s, s.frame_idx, copy.copy(s.stats)) for s in states]
        try:
            static_input = pixel_values.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    self._eager(static_input, **kwargs)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_output = self._eager(static_input, **kwargs)
            plan = self.handle._plan
            if plan is None or not plan.all_selective_from_store:
                raise RuntimeError("captured call was not a pure selective call")
            num_tokens = states[0].stats.tokens_per_frame
        except Exception as error:  # any capture problem: fall back to eager for good, say so once
            self.enabled = False
            self._graphs.clear()
            warnings.warn(f"STC-Cacher: CUDA graph capture failed ({error!r}); selective frames run eager from now on")
            return
        finally:
            for state, frame_idx, stats in snapshot:
                state.frame_idx, state.stats = frame_idx, stats
        self._graphs[key] = _Captured(graph, static_input, static_output, plan, num_tokens)
        self.captures += 1
        while len(self._graphs) > self.max_graphs:
            self._graphs.popitem(last=False)
