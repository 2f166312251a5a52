"""Host -> device copies that do not stall the stream's pipeline.

Why: `torch.tensor(values, device="cuda")` and `cpu_tensor.to("cuda")` copy from pageable memory and
then synchronise the stream, so the host waits for ALL queued GPU work (the previous frame's LLM step)
before it can launch the next frame. With CUDA-graphed stages the GPU then idles while the host does its
per-frame Python work: a bubble per copy, per frame. Staging through pinned memory makes the copy
asynchronous; PyTorch's caching host allocator records an event on the stream for a pinned block used by
a non-blocking copy and does not hand the block out again before the copy has run, so the staging
buffer may be dropped at once.

Not for use under CUDA-graph capture: a captured copy would read the staging buffer at every replay,
after the allocator has recycled it. `upload` refuses there (callers capture static device tensors).
"""

from __future__ import annotations

from typing import Sequence

import torch


def upload(values: Sequence, device: torch.device | str, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """A small host list (indices, lengths, constants) as a tensor on `device`, without a stream sync."""
    return upload_tensor(torch.tensor(values, dtype=dtype), device)


def upload_tensor(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """`tensor.to(device)` that does not block the host on CUDA: pinned staging (a copy on the host,
    skipped when `tensor` is already pinned), then a non-blocking copy. Device tensors and CPU targets
    pass through `.to`."""
    device = torch.device(device)
    if device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    if torch.cuda.is_current_stream_capturing():
        raise RuntimeError("upload under CUDA-graph capture: the captured copy would read a recycled staging "
                           "buffer at replay; build the tensor before capturing")
    if not tensor.is_pinned():
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)
