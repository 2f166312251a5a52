"""Loading the retrieved frame blocks of every layer at question time: side stream + device LRU.

Why: after a long stream the question's blocks (64 per layer, 28 layers at 7B) live in pinned host
pages; moving them one layer at a time with a host sync per layer left the copy engine and the GPU idle
in turn. Here (docs/rekv/answer-path.md):
  1. the host knows every layer's selection after ONE `.tolist()` (host.py);
  2. `BlockLoader.start` plans every layer against the device LRU (`BlockCache`: hits are device-to-device
     copies, misses come from the pinned pages), then issues all layers' loads on a dedicated side
     stream, recording one event per layer; no host sync. Misses of all layers move in one gather pass
     (`BlockStore.gather_blocks`: two kernels per page touched, pinned pages read over UVA), or with
     `gather=False` (ReKVConfig.block_loading="copies") one copy per run of consecutive slots per layer;
  3. `PendingBlocks.layer(l)` makes the current (compute) stream wait for layer l's event only, so the
     copies of later layers overlap with whatever the compute stream does with earlier ones: the loads
     into the answer cache, or (`load_during_prefill`, `LoadBeforeAttention`) the answer pre-fill itself,
     with copies issued a few layers ahead of the layer being computed.
On CPU, or with `side_stream=False`, the same code runs on the current stream, in order (the reference).

Stream safety: the staging buffer is allocated on the compute stream before the side stream waits for
it, and the compute stream reads it only after the per-layer events; the LRU rows are written and read
only on the side stream, in issue order (a plan's reads precede its fills).
"""

from __future__ import annotations

import contextlib

import torch

from frameworks.rekv.block_cache import BlockCache
from frameworks.common.uploads import upload
from frameworks.rekv.block_store import BlockStore


class PendingBlocks:
    """One question's blocks in flight: `layer(l)` -> pre-RoPE keys, values [Hkv, tokens, D] of layer l.

    Copies are issued layer by layer (`issue`); eagerly all at once by `BlockLoader.start`, or lazily
    (`ahead` layers in advance of the one asked for) when the loading runs inside the answer pre-fill."""

    def __init__(self, loader: "BlockLoader", staged: torch.Tensor, selection: list[list[int]], plans, indices,
                 events: list | None, ahead: int | None):
        self.loader, self.staged, self.selection = loader, staged, selection
        self.plans, self.indices, self.events, self.ahead = plans, indices, events, ahead
        self.issued = 0
        self.host_loaded = False  # every layer's blocks from the host pages already gathered (`gather`)

    def issue(self, upto: int) -> None:
        """Issue the copies of layers [issued, upto) (on the side stream, one event per layer)."""
        upto = min(upto, len(self.selection))
        if upto <= self.issued:
            return
        loader = self.loader
        with torch.cuda.stream(loader.side) if loader.side is not None else contextlib.nullcontext():
            for layer in range(self.issued, upto):
                loader.copy_layer(layer, self.selection[layer], self.staged[layer],
                                  self.plans[layer] if self.plans is not None else None,
                                  self.indices[layer] if self.indices is not None else None, self.host_loaded)
                if self.events is not None:
                    self.events[layer].record(loader.side)
        self.issued = upto

    def layer(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.ahead is not None:
            self.issue(layer + 1 + self.ahead)
        if self.events is not None:
            torch.cuda.current_stream(self.staged.device).wait_event(self.events[layer])
        chosen = self.selection[layer]
        store = self.loader.store
        return store.unstage(self.staged[layer, :len(chosen)], [store.lengths[i] for i in chosen])

    def all_layers(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every layer's blocks at once (all issued; every layer selected the same number of full blocks):
        pre-RoPE keys, values [L, Hkv, tokens, D]. The compute stream waits for the last layer's event: the
        side stream records them in order."""
        self.issue(len(self.selection))
        if self.events is not None:
            torch.cuda.current_stream(self.staged.device).wait_event(self.events[-1])
        return self.loader.store.unstage_all(self.staged)


class LoadBeforeAttention:
    """Attention backend wrapper for the answer pre-fill: layer l's retrieved blocks are loaded into the
    answer cache (`load(l)`) right before layer l attends, so the copies of later layers (issued while
    earlier layers compute) overlap with the pre-fill."""

    def __init__(self, inner, load):
        self.inner, self.load = inner, load

    def __call__(self, layer, queries, keys, values, scale):
        self.load(layer)
        return self.inner(layer, queries, keys, values, scale)


class BlockLoader:
    """Per-stream loader of retrieved blocks (owns the side stream and the device LRU, if any).

    `cache_blocks` = LRU capacity per layer (0: none; also none when `offload=False` keeps the store on a
    CUDA device, where a cache would only duplicate it; on CPU it is kept, so that CPU tests run the same
    path). `side_stream=False` issues the copies on the current stream (the synchronous reference)."""

    def __init__(self, store: BlockStore, cache_blocks: int, side_stream: bool = True, gather: bool = True):
        self.store, self.gather = store, gather
        device = store.device
        offloaded = store.storage_device != device or device.type == "cpu"
        row = (2, store.kv_heads, store.block_tokens, store.head_dim)
        self.cache = (BlockCache(store.num_layers, cache_blocks, row, store.dtype, device)
                      if cache_blocks > 0 and offloaded else None)
        self.side = torch.cuda.Stream(device) if side_stream and device.type == "cuda" else None
        self.copies = 0  # copy calls issued (host pages -> device), for the timings
        self.pending: PendingBlocks | None = None  # the last lazy load (see `start`)

    def clear(self) -> None:
        """New video: forget the LRU entries (stale keys could never match anyway; this frees them) and
        zero the counters."""
        self.copies = 0
        if self.cache is not None:
            self.cache.clear()
            self.cache.hits = self.cache.misses = 0

    def start(self, selection: list[list[int]], ahead: int | None = None) -> PendingBlocks:
        """Plan every layer's selected blocks (`selection[l]`: ascending block indices) and issue their
        copies: all layers now (`ahead=None`), or the first `ahead` layers, the others as `layer(l)` asks
        for l (each call issuing up to layer l + ahead)."""
        if self.pending is not None:  # an abandoned lazy load: its LRU fills must land before new reads
            self.pending.issue(len(self.pending.selection))
        store, device = self.store, self.store.device
        width = max((len(chosen) for chosen in selection), default=0)
        staged = torch.empty(len(selection), width, 2, store.kv_heads, store.block_tokens, store.head_dim,
                             dtype=store.dtype, device=device)  # on the compute stream (see module doc)
        plans = [self.cache.plan(layer, store.block_keys(chosen)) for layer, chosen in enumerate(selection)] \
            if self.cache is not None else None
        events = None
        if self.side is not None:
            self.side.wait_stream(torch.cuda.current_stream(device))
            staged.record_stream(self.side)  # never reused before the side stream's writes are done
            events = [torch.cuda.Event() for _ in selection]
        indices = None
        if plans is not None:
            with torch.cuda.stream(self.side) if self.side is not None else contextlib.nullcontext():
                indices = self._upload_indices(plans)
        pending = PendingBlocks(self, staged, selection, plans, indices, events, ahead)
        if self.gather and ahead is None:  # every layer's host blocks in one pass (two kernels per page)
            with torch.cuda.stream(self.side) if self.side is not None else contextlib.nullcontext():
                self.copies += self.store.gather_blocks(self._host_blocks(selection, plans), staged)
            pending.host_loaded = True
        pending.issue(len(selection) if ahead is None else ahead)
        self.pending = pending if ahead is not None else None
        return pending

    @staticmethod
    def _host_blocks(selection: list[list[int]], plans) -> list[list[tuple[int, int]]]:
        """Per layer, (block index, staging row) of the blocks that come from the host pages: all of
        them without an LRU, else the LRU plan's misses."""
        if plans is None:
            return [list(zip(chosen, range(len(chosen)))) for chosen in selection]
        return [[(chosen[p], p) for p in plan.misses] for chosen, plan in zip(selection, plans)]

    def copy_layer(self, layer: int, chosen: list[int], out: torch.Tensor, plan, indices,
                   host_loaded: bool = False) -> None:
        """Layer `layer`'s blocks into `out` (current stream): from the host pages (unless `host_loaded`:
        gathered for all layers already), or served by `plan`."""
        if plan is None:
            if not host_loaded:
                self.copies += self.store.copy_blocks(layer, chosen, out, range(len(chosen)))
            return
        if plan.misses and not host_loaded:  # misses from the host pages, hits from the LRU rows, then misses into their rows
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
        device = upload(flat, self.store.device)
        out, start = [], 0
        for sizes in spans:
            pieces = []
            for size in sizes:
                pieces.append(device[start:start + size])
                start += size
            out.append(tuple(pieces))
        return out
