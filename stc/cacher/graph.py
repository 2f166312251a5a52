"""CUDA-graph replay of tower calls (reference and selective frames).

At batch 1 a selective frame is ~20 small kernels per layer: on a fast GPU host launch time, not
FLOPs, dominates, and the eager selective frame is slower than a dense one (stc-method.md §2.7).
Both frame kinds are shape-static (k is fixed; reference buffers are written in place, so their
addresses never change), so one graph per (streams, frame kinds, input shape, dtype, kwargs) replays
a whole tower call with a single launch. Upstream graphed only selective frames; graphing reference
frames too matters because with N=4 they are a quarter of the frames.

How it works: the runner replaces the tower's `forward` (instance attribute; removed on detach).
- Not graphable, so eager: CPU tensors, grad enabled, extra positional args. Batches that hold several
  consecutive frames of one stream (reference and selective rows chained inside the call) are graphed
  like any other: the key holds the per-row frame kinds, which fix the plan.
- The first call of a new key runs eager (it IS the frame). Then the runner captures a graph by
  re-running the same frame (2 warm-ups on a side stream + capture), with each stream set back to its
  state before the call for each run (`CacherState.checkpoint`: counters and whether its reference is
  valid, which decides the kind of an off-grid first frame). Re-running a frame is harmless: a
  selective frame writes nothing, a reference frame rewrites the same reference. The state after the
  call is restored afterwards, and a capture whose frame kinds differ from its key is refused.
- Later calls copy the pixels into the static input, replay, advance the counters and return CLONES
  of the static outputs (cloning costs microseconds; aliased outputs that the next call overwrites
  are a trap). All graphs of a runner share one memory pool; they never run concurrently.
- Any capture failure disables the runner for this handle with one warning; calls go eager.
"""

from __future__ import annotations

import copy
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

from stc.cacher.plan import CallPlan, commit_frames, expected_modes
from stc.cuda_capture import capture, failure_text


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    static_input: torch.Tensor
    static_output: Any
    plan: CallPlan
    signature: tuple  # (T, D, dtype, device) of the references this call reads or writes


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


def _kwarg_key(value):
    """Graph-key form of a keyword argument: plain values as they are, small tensors (Qwen2-VL's
    grid_thw) by content, anything else by identity."""
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    if isinstance(value, torch.Tensor) and value.numel() <= 64 and not value.is_floating_point():
        return ("tensor", tuple(value.shape), str(value.device), tuple(value.flatten().tolist()))
    return id(value)


class CudaGraphRunner:
    """Replaces `handle.tower.forward`; see the module docstring. `max_graphs` bounds memory (LRU)."""

    def __init__(self, handle, max_graphs: int = 32):
        self.handle = handle
        self.tower = handle.tower
        self.max_graphs = max_graphs
        self.enabled = True
        self.replays = 0
        self.captures = 0
        self._pool = None
        self._graphs: OrderedDict[tuple, _Captured] = OrderedDict()
        self._eager = type(self.tower).forward.__get__(self.tower)
        self.tower.forward = self.forward

    def uninstall(self) -> None:
        if self.tower.__dict__.get("forward") == self.forward:
            del self.tower.forward
        self._graphs.clear()

    def forward(self, pixel_values=None, *args, **kwargs):
        # an adaptive refresh policy decides from the frame's own data on the host, so the modes of a
        # call are unknown before it runs: such calls run eager (stc/cacher/refresh.py)
        if self.handle.bypassing or self.handle.refresh_policy is not None or not self._graphable(pixel_values, args):
            return self._eager(pixel_values, *args, **kwargs)
        states = self.handle.row_states(self.handle.anatomy.call_rows(pixel_values, kwargs))
        modes = expected_modes(states, self.handle.config.cache_interval)
        key = self._key(states, modes, pixel_values, kwargs)
        if key in self._graphs:
            return self._replay(key, pixel_values)
        before = [(s, s.checkpoint()) for s in {s.id: s for s in states}.values()]
        output = self._eager(pixel_values, **kwargs)
        plan = self.handle._plan
        if plan is not None and plan.modes == modes:  # the runner predicted this call right: graph it
            self._capture(self._key(states, modes, pixel_values, kwargs), pixel_values, kwargs, before)
        return output

    # ---- helpers -------------------------------------------------------------------------------
    def _graphable(self, pixel_values, args) -> bool:
        return (
            self.enabled
            and not args
            and isinstance(pixel_values, torch.Tensor)
            and pixel_values.is_cuda
            and not torch.is_grad_enabled()
        )

    @staticmethod
    def _key(states, modes, pixel_values, kwargs) -> tuple:
        frozen = tuple(sorted((k, _kwarg_key(v)) for k, v in kwargs.items()))
        streams = tuple((s.id, s.version) for s in states)
        return (streams, modes, tuple(pixel_values.shape), pixel_values.dtype, pixel_values.device, frozen)

    def _replay(self, key, pixel_values):
        self._graphs.move_to_end(key)
        captured = self._graphs[key]
        captured.static_input.copy_(pixel_values)
        captured.graph.replay()
        for _, state in captured.plan.store_rows:  # a replayed reference frame makes the reference valid
            state.prepare_buffers(*captured.signature)
            state.commit_reference()
        commit_frames(captured.plan, captured.signature[0])
        self.replays += 1
        return clone_outputs(captured.static_output)

    def _capture(self, key, pixel_values, kwargs, before) -> None:
        after = [(s, s.checkpoint()) for s, _ in before]

        def rewind():  # the streams as they were before the call: counters AND reference validity
            for state, checkpoint in before:
                state.restore(checkpoint)

        def step():  # the call, and what the capture must keep of it (read before `rewind` runs)
            output = self._eager(static_input, **kwargs)
            plan = self.handle._plan
            return output, plan, plan.states[0].reference_signature

        try:
            static_input = pixel_values.clone()
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            rewind()
            graph, (static_output, plan, signature) = capture(step, rewind, pixel_values.device, pool=self._pool)
            if plan.modes != key[1]:  # the graph would replay other frame kinds than its key says
                raise RuntimeError(f"captured frame kinds {plan.modes} differ from the call's {key[1]}")
        except Exception as error:  # any capture problem: fall back to eager for good, say so once
            # (`capture` has set the caller's stream back and synchronised the device)
            self.enabled = False
            self._graphs.clear()
            warnings.warn(f"STC-Cacher: CUDA graph capture failed ({failure_text(error)}); tower calls run eager "
                          "from now on")
            return
        finally:
            for state, checkpoint in after:
                state.restore(checkpoint)
        self._graphs[key] = _Captured(graph, static_input, static_output, plan, signature)
        self.captures += 1
        while len(self._graphs) > self.max_graphs:
            self._graphs.popitem(last=False)
