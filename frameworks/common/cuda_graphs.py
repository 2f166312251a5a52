"""The one capture protocol of the hosts' CUDA graphs (ReKV pre-fill and decoding steps, token stage).

A stateful step (it advances counters, writes caches) is captured by really running it: warm-ups on a
side stream (PyTorch's rule: lazy inits, cuBLAS workspaces and compiled kernels happen outside the
capture), with the caller's `restore` putting the state back after each, then the recording, then
`restore` once more (a recording changes no state; restoring again is harmless). On any failure the
current stream is set back (a failed `capture_end` skips the capture stream's exit), the device is
synchronised, the state restored, and the error re-raised for the caller to fall back to eager.

`GraphTable` is the bookkeeping around it that the ReKV runners share: which key to capture when, how
many graphs to keep, one memory pool, and what a failure does.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any, Callable, Hashable, Optional, TypeVar

import torch

T = TypeVar("T")


def capture(step: Callable[[], T], restore: Callable[[], None], device: torch.device, pool=None,
            warmups: int = 2) -> tuple[torch.cuda.CUDAGraph, T]:
    """-> (graph, the outputs of the recorded `step`: static tensors a replay overwrites). `pool`: a
    graph memory pool to share (`graph.pool()` of an earlier graph, or `torch.cuda.graph_pool_handle()`)."""
    current = torch.cuda.current_stream(device)
    try:
        side = torch.cuda.Stream(device=device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            for _ in range(warmups):
                step()
                restore()
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool):
            outputs = step()
        restore()
        return graph, outputs
    except Exception:
        torch.cuda.set_stream(current)
        torch.cuda.synchronize(device)
        restore()
        raise


def failure_text(error: BaseException) -> str:
    """A capture failure in words, root cause first. A CUDA call that is illegal while a stream captures
    (a sync, a pinned allocation) fails, and `torch.cuda.graph`'s exit then raises "operation failed due
    to a previous error during capture", which hides it: name the earliest error of the chain too."""
    chain = [error]
    while chain[-1].__context__ is not None and len(chain) < 8:
        chain.append(chain[-1].__context__)
    text = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    if len(chain) > 1:
        root = chain[-1]
        text += f"; first error: {type(root).__name__}: {str(root).splitlines()[0] if str(root) else ''}"
    return text


class GraphTable:
    """The captured graphs of one runner, by key. Policy shared by the ReKV pre-fill steps, question pass
    and answer pre-fill:
    - a key is captured on its SECOND call (the first runs eagerly): shapes seen once - the odd last
      chunk, the token count of a variable-count method, a one-off prompt length - never pay a capture
      (~3 eager runs);
    - at most `limit` graphs are kept, least recently used dropped first;
    - all graphs share one memory pool (they never run concurrently, and each graph's outputs are read
      before the next replay of any of them);
    - a capture failure disables the table for good, with one warning naming `what`.
    `get(key, record)` returns the key's entry (whatever `record` returned beside the graph), capturing
    it first on the key's second call, or None: run eagerly. `record(pool)` -> (graph, entry)."""

    def __init__(self, what: str, limit: int, enabled: bool = True):
        self.what, self.limit, self.enabled = what, limit, enabled
        self.entries: "OrderedDict[Hashable, Any]" = OrderedDict()
        self.seen: set = set()
        self.pool = None
        self.captures = 0

    def get(self, key: Hashable, record: Callable[[Any], tuple[Any, Any]]) -> Optional[Any]:
        if not self.enabled:
            return None
        if key not in self.entries and key in self.seen:
            try:
                graph, entry = record(self.pool)
            except Exception as error:  # noqa: BLE001 - any capture failure means: run eager, say so once
                self.enabled = False
                warnings.warn(f"{self.what} not graphed ({failure_text(error)}); running eager",
                              RuntimeWarning, stacklevel=3)
                return None
            self.pool = graph.pool()
            self.entries[key] = entry
            self.captures += 1
            while len(self.entries) > self.limit:
                self.entries.popitem(last=False)
        self.seen.add(key)
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry
