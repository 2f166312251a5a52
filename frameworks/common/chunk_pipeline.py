"""Two-stage chunk pipeline of a streaming host's ingest: the vision half of chunk i+1 overlaps the LLM
half of chunk i on a second CUDA stream.

    pipeline = ChunkPipeline(device, enabled=config.pipeline_ingest)
    pipeline.run(chunks, produce=lambda chunk: tokens_of(chunk), consume=lambda tokens: prefill(tokens))

Why: at one frame per LLM call both halves are latency-bound CUDA graphs (H200, LLaVA-OV-7B size: the
STC tower ≈ 2.7 ms, the 64-token pre-fill step ≈ 6.9 ms, each far from its floor, docs/speed/h200.md), so
on one stream the GPU runs them back to back with most SMs idle in each. On two streams the next
chunk's tower can run while this chunk's pre-fill step does.

Exactness: each half runs the same kernels in the same order on its own stream; the only data that
crosses is what `produce` returns, which `consume` reads after an event (and which the caching
allocator keeps alive for the consumer's stream: `record_stream`). `produce` and `consume` must not share
other device buffers that both write. When the pipeline ends, the caller's stream waits for both
streams (no host synchronisation), so whatever runs next on it sees the whole ingest. Off CUDA, or with
`enabled=False`, chunks run one after the other on the caller's stream.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import torch


def _tensors(item: Any) -> Iterator[torch.Tensor]:
    if isinstance(item, torch.Tensor):
        yield item
    elif isinstance(item, (list, tuple)):
        for part in item:
            yield from _tensors(part)
    elif isinstance(item, dict):
        for part in item.values():
            yield from _tensors(part)


class ChunkPipeline:
    """`run(chunks, produce, consume)`: consume(produce(chunk)) for every chunk, in order; on CUDA with
    `enabled`, produce on one stream and consume on another (streams made once, kept per pipeline)."""

    def __init__(self, device: torch.device | str, enabled: bool):
        self.device = torch.device(device)
        self.enabled = bool(enabled) and self.device.type == "cuda"
        self._streams = None

    def run(self, chunks: Iterable[Any], produce: Callable[[Any], Any], consume: Callable[[Any], None]) -> None:
        if not self.enabled:
            for chunk in chunks:
                consume(produce(chunk))
            return
        current = torch.cuda.current_stream(self.device)
        if self._streams is None:
            self._streams = (torch.cuda.Stream(self.device), torch.cuda.Stream(self.device))
        front, back = self._streams
        front.wait_stream(current)
        back.wait_stream(current)
        try:
            for chunk in chunks:
                with torch.cuda.stream(front):
                    item = produce(chunk)
                    ready = torch.cuda.Event()
                    ready.record(front)
                back.wait_event(ready)
                for tensor in _tensors(item):
                    if tensor.is_cuda:
                        tensor.record_stream(back)
                with torch.cuda.stream(back):
                    consume(item)
        finally:
            current.wait_stream(front)
            current.wait_stream(back)
