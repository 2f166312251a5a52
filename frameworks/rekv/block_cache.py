"""A per-layer LRU of retrieved frame blocks kept on the compute device (ReKV's GPU block cache).

Why: consecutive questions about one stream retrieve overlapping blocks, and a block already on the
device is one device-to-device copy instead of a PCIe transfer from pinned host pages. ReKV/InfLLM keep
an LRU of `max_cached_block` = 128 blocks per layer (frameworks-benchmarks.md §A1, step c).

Keys are `BlockStore.block_keys(...)` pairs (physical slot, write stamp). The stamp is unique for every
block ever written into the store (it survives `clear`), so a slot freed by `evict` or by a new video and
rewritten gets a new key: a stale entry can never be served, it only ages out. `clear()` (a new video)
forgets all entries at once.

This object is pure bookkeeping plus one device tensor `rows` [L, capacity, *row_shape] (allocated on
first use); the copies themselves are issued by `answer_loading.BlockLoader` from the `LayerPlan`s.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Hashable, Sequence

import torch


@dataclass
class LayerPlan:
    """How one layer's selected blocks (output positions 0..n-1) are served.

    hits: (position, row) pairs read from `rows[layer]`; misses: positions fetched from the host pages;
    fills: (position, row) pairs written into `rows[layer]` after the reads (each row at most once).
    Reads must happen before fills: a fill may reuse the row of a block that is a hit of the same plan.
    """

    hits: list[tuple[int, int]] = field(default_factory=list)
    misses: list[int] = field(default_factory=list)
    fills: list[tuple[int, int]] = field(default_factory=list)


class BlockCache:
    """LRU of `capacity` blocks per layer; `plan(layer, keys)` serves a selection and updates the order."""

    def __init__(self, num_layers: int, capacity: int, row_shape: Sequence[int], dtype: torch.dtype,
                 device: torch.device):
        if capacity < 1:
            raise ValueError(f"gpu block cache capacity must be >= 1, got {capacity}")
        self.num_layers, self.capacity = num_layers, capacity
        self.row_shape, self.dtype, self.device = tuple(row_shape), dtype, device
        self.rows: torch.Tensor | None = None
        self.hits = self.misses = 0
        self.clear()

    def clear(self) -> None:
        """Forget every entry (new video); the device rows are kept and overwritten."""
        self.entries: list[OrderedDict[Hashable, int]] = [OrderedDict() for _ in range(self.num_layers)]
        self.free: list[list[int]] = [list(range(self.capacity)) for _ in range(self.num_layers)]

    def storage(self) -> torch.Tensor:
        """Device rows [L, capacity, *row_shape] (allocated once, on the first call)."""
        if self.rows is None:
            self.rows = torch.empty(self.num_layers, self.capacity, *self.row_shape, dtype=self.dtype,
                                    device=self.device)
        return self.rows

    def plan(self, layer: int, keys: Sequence[Hashable]) -> LayerPlan:
        """Serve blocks `keys` (unique; output position = index in `keys`) for `layer`. Hits become most
        recently used (in order), then misses are inserted in order, each taking a free row or the row of
        the least recently used entry."""
        entries, free, plan = self.entries[layer], self.free[layer], LayerPlan()
        for position, key in enumerate(keys):
            row = entries.get(key)
            if row is None:
                plan.misses.append(position)
            else:
                plan.hits.append((position, row))
                entries.move_to_end(key)
        fills: dict[int, int] = {}  # row -> position (a later miss may take the row of an earlier one)
        for position in plan.misses:
            row = free.pop(0) if free else entries.popitem(last=False)[1]
            entries[keys[position]] = row
            fills[row] = position
        plan.fills = sorted((position, row) for row, position in fills.items())
        self.hits += len(plan.hits)
        self.misses += len(plan.misses)
        return plan

    def cached_keys(self, layer: int) -> list:
        """Keys of `layer`, least recently used first (for tests and debugging)."""
        return list(self.entries[layer])
