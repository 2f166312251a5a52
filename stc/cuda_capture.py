"""The one capture protocol of the project's CUDA graphs: STC-Cacher's tower calls (stc/cacher/graph.py)
and the hosts' LLM steps and token stage (frameworks/common/cuda_graphs.py re-exports it).

A stateful step is captured by really running it: warm-ups on a side stream (PyTorch's rule: lazy
inits, cuBLAS workspaces and compiled kernels happen outside the capture), with the caller's `restore`
putting the state back after each, then the recording (with Python's cyclic garbage collector paused:
`torch.cuda.graph` no longer collects before it starts unless `torch.compiler.config.force_cudagraph_gc`,
so cyclic garbage of earlier work, e.g. a finished host's graphs, events and pinned blocks, can still be
alive, and a collection that a step's allocations trigger mid-recording would run their finalisers,
whose CUDA calls are illegal while a stream captures and invalidate the recording), then `restore` once
more. On any failure the
current stream is set back (a failed `capture_end` skips the capture stream's exit), the device is
synchronised, the state restored, and the error re-raised for the caller to fall back to eager.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Callable, TypeVar

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
        with _collector_paused(), torch.cuda.graph(graph, pool=pool):
            outputs = step()
        restore()
        return graph, outputs
    except Exception:
        torch.cuda.set_stream(current)
        torch.cuda.synchronize(device)
        restore()
        raise


@contextmanager
def _collector_paused():
    """Cyclic garbage collection off inside the block, back to its previous setting after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
