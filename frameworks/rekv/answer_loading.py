"""Loading the retrieved frame blocks of every layer at question time: side stream + device LRU.

Why: after a long stream the question's blocks (64 per layer, 28 layers at 7B) live in pinned host
pages; moving them one layer at a time with a host sync per layer left the copy engine and the GPU idle
in turn. Here (docs/rekv/answer-path.md):
  1. the host knows every layer's selection after ONE `.tolist()` (host.py);
  2. `BlockLoader.start` plans every layer against the device LRU (`BlockCache`: hits are device-to-device
     copies, misses come from the pinned pages, one copy per run of consecutive slots), then issues all
     layers' copies on a dedicated side stream, recording one event per layer; no host sync;
  3. `PendingBlocks.layer(l)` makes the current (compute) stream wait for layer l's event only, so the
     copies of later layers overlap with whatever the compute stream does with earlier ones.
On CPU, or with `side_stream=False`, the same code runs on the current stream, in order (the reference).

Stream safety: the staging buffer is allocated on the compute stream before the side stream waits for
it, and the compute stream reads it only after the per-layer events; the LRU rows are written and read
only on the side stream, in issue order (a plan's reads precede its fills).
"""

from __future__ import annotations

import contextlib

import torch

from frameworks.rekv.block_cache import BlockCache
from frameworks.rekv.block_store import BlockStore


class PendingBlocks:
    """One question's blocks in flight: `layer(l)` -> pre-RoPE keys, values [Hkv, tokens, D] of layer l."""

    def __init__(self, store: BlockStore, staged: torch.Tensor, selection: list[list[int]], events: list | None):
        self.store, self.staged, self.selection, self.events = store, staged, selection, events

    def layer(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.events is not None:
            torch.cuda.current_stream(self.staged.device).wait_event(self.events[layer])
        chosen = self.selection[layer]
        sizes = [self.store.lengths[i] for i in chosen]
        return self.store.unstage(self.staged[layer, :len(chosen)], sizes)


class BlockLoader:
    """Per-stream loader of retrieved blocks (owns the side stream and the device LRU, if any).

    `cache_blocks` = LRU capacity per layer (0: none; also none when `offload=False` keeps the store on a
    CUDA device, where a cache would only duplicate it; on CPU it is kept, so that CPU tests run the same
    path). `side_stream=False` issues the copies on the current stream (the synchronous reference)."""

    def __init__(self, store: BlockStore, cache_blocks: int, side_stream: bool = True):
        self.store = store
        device = store.device
        offloaded = store.storage_device != device or device.type == "cpu"
        row = (2, store.kv_heads, store.block_tokens, store.head_dim)
        self.cache = (BlockCache(store.num_layers, cache_blocks, row, store.dtype, device)
                      if cache_blocks > 0 and offloaded else None)
        self.side = torch.cuda.Stream(device) if side_stream and device.type == "cuda" else None
        self.copies = 0  # copy calls issued (host pages -> device), for the timings

    def clear(self) -> None:
        """New video: forget the LRU entries (stale keys could never match anyway; this frees them) and
        zero the counters."""
        self.copies = 0
        if self.cache is not None:
            self.cache.clear()
            self.cache.hits = self.cache.misses = 0

    def start(self, selection: list[list[int]]) -> PendingBlocks:
        """Issue the copies of every layer's selected blocks (`selection[l]`: ascending block indices)."""
        store, device = self.store, self.store.device
        width = max((len(chosen) for chosen in selection), default=0)
        staged = torch.empty(len(selection), width, 2, store.kv_heads, store.block_tokens, store.head_dim,
                             dtype=store.dtype, device=device)  # on the compute stream (see module doc)
        plans = [self.cache.plan(layer, store.block_keys(chosen)) for layer, chosen in enumerate(selection)] \
            if self.cache is not None else None
        events = None
        if self.side is not None:
            self.side.wait_stream(torch.cuda.current_stream(device))
            events = [torch.cuda.Event() for _ in selection]
        with torch.cuda.stream(self.side) if self.side is not None else contextlib.nullcontext():
            indices = self._upload_indices(plans) if plans is not None else None
            for layer, chosen in enumerate(selection):
                out = staged[layer]
                if plans is None:
                    self.copies += store.copy_blocks(layer, chosen, out, range(len(chosen)))
                else:
                    self._serve(layer, plans[layer], chosen, out, indices[layer])
                if events is not None:
                    events[layer].record(self.side)
        return PendingBlocks(store, staged, selection, events)

    def _serve(self, layer: int, plan, chosen: list[int], out: torch.Tensor, indices) -> None:
        """Misses from the host pages, hits from the LRU rows, then the misses into their LRU rows."""
        if plan.misses:
            self.copies += self.store.copy_blocks(layer, [chosen[p] for p in plan.misses], out, plan.misses)
        rows = self.cache.storage()[layer]
        hit_positions, hit_rows, fill_positions, fill_rows = indices
        if plan.hits:
            out.index_copy_(0, hit_positions, rows.index_select(0, hit_rows))
        if plan.fills:
            rows.index_copy_(0, fill_rows, out.index_select(0, fill_positions))

    def _upload_indices(self, plans) -> list[tuple[torch.Tensor, ...]]:
        """Every layer's hit/fill positions and rows as device index tensors, in ONE host->device copy."""
        flat: list[int] = []
        spans = []
        for plan in plans:
            parts = ([p for p, _ in plan.hits], [r for _, r in plan.hits],
                     [p for p, _ in plan.fills], [r for _, r in plan.fills])
            spans.append([len(part) for part in parts])
            for part in parts:
                flat.extend(part)
        host = torch.tensor(flat, dtype=torch.long)
        if self.store.device.type == "cuda":
            host = host.pin_memory()
        device = host.to(self.store.device, non_blocking=True)
        out, start = [], 0
        for sizes in spans:
            pieces = []
            for size in sizes:
                pieces.append(device[start:start + size])
                start += size
            out.append(tuple(pieces))
        return out
