"""Per-stream STC-Cacher state: frame counter, counters, and per-layer reference buffers.

One `CacherState` per video stream. It is created by a `CacherHandle` (so it knows how many layers
the tower has) and passed to the tower explicitly (`handle.use(state)`); several states can share one
tower, and a batch may mix frames of different states. Nothing here is global.

Reference buffers live in a slot of the handle's `ReferencePool` (one [layers, 3, slots, T, D] tensor per
signature): a stream gets its slot on its first reference frame, and every later reference frame
writes it IN PLACE, so addresses never change and CUDA graphs captured for selective frames keep
reading the current reference. A stream's views move (and its `version` is bumped, invalidating graphs)
only when its token count, width, dtype or device changes or when the pool grows.
"""

from __future__ import annotations

import copy

import itertools
import weakref
from dataclasses import dataclass
from typing import Optional

import torch

from stc.cacher.refresh import RefreshState

_state_ids = itertools.count()  # identity only; never read as configuration


@dataclass
class CacherStats:
    """What the cacher did for this stream since the last reset (tests and harnesses read these)."""

    reference_frames: int = 0
    selective_frames: int = 0
    last_frame_reference: Optional[bool] = None
    tokens_per_frame: int = 0  # T seen by the encoder layers
    tokens_recomputed: int = 0  # k per layer on the last selective frame


class LayerReference:
    """Reference tensors of one encoder layer, each [T, D] (views of one slot of the handle's
    `ReferencePool`, so a batched call reads the references of several streams with one index):

    - selection: the selection feature (keys, or the LN1 output) in the form the metric compares
      against (unit vectors for cosine, see `selection.prepare_reference`);
    - value: the value projection (static tokens attend to these);
    - branch_sum: attention-branch output + MLP-branch output, each before its residual add. Static
      tokens of a selective frame output `h_current + A_ref + M_ref`; only the sum is ever read, so
      one buffer and one add replace two (the method stores A_ref and M_ref separately).
    """

    __slots__ = ("selection", "value", "branch_sum")

    def __init__(self):
        self.selection = self.value = self.branch_sum = None


KINDS = LayerReference.__slots__


class SlotBank:
    """The references of every stream of one signature (T, D, dtype, device): ONE tensor
    [layers, 3, slots, T, D]; `kind(layer, i)` is the [slots, T, D] buffer of reference kind i
    (selection, value, branch_sum) at that layer, and a stream owns one slot index in all of them.

    Why one buffer: a call that batches S streams reads their references with one index (a slice
    when the streams' slots are consecutive) instead of stacking S [T, D] tensors per layer and kind,
    and writes the references of its reference rows with one `index_copy_` per kind.

    Slots are handed out lowest-first and returned when a stream leaves (`ReferencePool.release`, or
    when the state is garbage-collected). The bank grows by doubling when full: contents are copied,
    every stream's views are re-bound and its `version` bumped (so CUDA graphs captured on the old
    addresses are never replayed)."""

    def __init__(self, signature: tuple, num_layers: int, capacity: int):
        self.signature = signature
        self.num_layers = num_layers
        self.storage = self._allocate(capacity)
        self.owners: dict[int, "weakref.ref[CacherState]"] = {}  # slot -> state

    def _allocate(self, capacity: int) -> torch.Tensor:
        num_tokens, width, dtype, device = self.signature
        return torch.empty(self.num_layers, len(KINDS), capacity, num_tokens, width, dtype=dtype, device=device)

    @property
    def capacity(self) -> int:
        return self.storage.shape[2]

    def kind(self, layer: int, kind: int) -> torch.Tensor:
        return self.storage[layer, kind]

    def layer(self, layer: int) -> torch.Tensor:
        """[3, slots, T, D]: every stream's selection / value / branch_sum references at this layer."""
        return self.storage[layer]

    def acquire(self, state: "CacherState") -> int:
        free = [slot for slot in range(self.capacity) if slot not in self.owners]
        if not free:
            old = self.capacity
            grown = self._allocate(2 * old)
            grown[:, :, :old].copy_(self.storage)
            self.storage, free = grown, [old]
            for slot, owner in list(self.owners.items()):
                live = owner()
                if live is not None:
                    live._bind(self, slot)
        slot = free[0]
        self.owners[slot] = weakref.ref(state)
        return slot

    def release(self, slot: int) -> None:
        self.owners.pop(slot, None)


class ReferencePool:
    """Every stream's reference buffers on one handle, one `SlotBank` per signature (several only
    when streams of different resolutions or dtypes share a tower). Owned by the `CacherHandle`;
    a state created without one gets its own (then nothing is shared)."""

    def __init__(self, num_layers: int, initial_slots: int = 1):
        self.num_layers = num_layers
        self.initial_slots = initial_slots
        self.banks: dict[tuple, SlotBank] = {}

    def bank(self, signature: tuple) -> SlotBank:
        if signature not in self.banks:
            self.banks[signature] = SlotBank(signature, self.num_layers, self.initial_slots)
        return self.banks[signature]

    def release(self, bank: SlotBank, slot: int) -> None:
        """Return a slot; a bank without streams is dropped (its memory freed)."""
        bank.release(slot)
        if not bank.owners and self.banks.get(bank.signature) is bank:
            del self.banks[bank.signature]

    def memory_bytes(self) -> int:
        return sum(b.storage.numel() * b.storage.element_size() for b in self.banks.values())


def _release_lease(pool: ReferencePool, lease: list) -> None:
    """Give a stream's slot back (called on `release()` and when the state is garbage-collected)."""
    bank, slot = lease
    if bank is not None:
        pool.release(bank, slot)
    lease[:] = [None, None]


class CacherState:
    """Per-stream state. `frame_idx` counts frames since `reset()`; frame i is a reference frame when
    (i - phase) % cache_interval == 0 or when no reference exists yet (so frame 0 always is).

    `phase` staggers the refreshes of streams that share batched calls: with S streams in lockstep and
    phase i for stream i, each call holds about S/N reference rows instead of all S every N-th call.

    The reference tensors live in one slot of `pool` (the handle's `ReferencePool`); `layers[i]` holds
    views of that slot. A stream that leaves calls `release()` (or is simply dropped): its slot goes
    back to the pool for the next stream that joins."""

    def __init__(self, num_layers: int, owner_id: int, phase: int = 0, pool: ReferencePool | None = None):
        self.id = next(_state_ids)
        self.owner_id = owner_id
        self.phase = phase
        self.pool = pool if pool is not None else ReferencePool(num_layers)
        self.layers = [LayerReference() for _ in range(num_layers)]
        self.frame_idx = 0
        self.version = 0
        self.stats = CacherStats()
        self.refresh = RefreshState()  # the adaptive refresh policy's per-stream data
        self._signature = None  # (T, D, dtype, device) of the stored reference, once complete
        self._pending = None  # signature of a reference being written by the call in flight
        self._lease = [None, None]  # (SlotBank, slot) this stream's references live in
        weakref.finalize(self, _release_lease, self.pool, self._lease)

    def reset(self) -> None:
        """Start a new video: the next frame is a reference frame. The slot is kept for reuse."""
        self.frame_idx = 0
        self.stats = CacherStats()
        self.refresh.reset()
        self._signature = self._pending = None

    def release(self) -> None:
        """The stream leaves: its slot goes back to the pool (a later frame starts over with a reference)."""
        self.reset()
        _release_lease(self.pool, self._lease)
        for layer in self.layers:
            layer.selection = layer.value = layer.branch_sum = None
        self.version += 1

    def checkpoint(self) -> tuple:
        """What one tower call changes in this stream on the host: the frame counter, the stats and
        whether a stored reference is valid. The CUDA-graph runner re-runs a call to capture it and
        must put ALL of it back before each re-run: a stream whose first frame is off its refresh grid
        plans that frame as a reference only while it has no valid reference (restoring the counter
        alone captured a selective frame under a reference frame's key). The slot itself is not part
        of it: a re-run writes the same slot."""
        return self.frame_idx, copy.copy(self.stats), self._signature, self._pending

    def restore(self, checkpoint: tuple) -> None:
        self.frame_idx, stats, self._signature, self._pending = checkpoint
        self.stats = copy.copy(stats)

    def is_scheduled_reference(self, frame: int, cache_interval: int) -> bool:
        return (frame - self.phase) % cache_interval == 0

    @property
    def has_reference(self) -> bool:
        return self._signature is not None

    @property
    def reference_signature(self):
        """(T, D, dtype, device) of the stored reference, or None before the first reference frame."""
        return self._signature

    @property
    def bank(self) -> Optional[SlotBank]:
        return self._lease[0]

    @property
    def slot(self) -> Optional[int]:
        return self._lease[1]

    def reference_matches(self, num_tokens: int, width: int, dtype: torch.dtype, device: torch.device) -> bool:
        return self._signature == (num_tokens, width, dtype, torch.device(device))

    def prepare_buffers(self, num_tokens: int, width: int, dtype: torch.dtype, device: torch.device) -> None:
        """Make sure this stream owns a slot of this signature; called before writing a reference.
        The stored reference is invalid from here until `commit_reference()` (after the last layer
        wrote it): a call that fails mid-tower leaves the stream so that its next frame is a reference."""
        signature = (num_tokens, width, dtype, torch.device(device))
        if self.bank is None or self.bank.signature != signature:
            _release_lease(self.pool, self._lease)
            bank = self.pool.bank(signature)
            self._lease[:] = [bank, bank.acquire(self)]
            self._bind(bank, self._lease[1])
        self._signature, self._pending = None, signature

    def _bind(self, bank: SlotBank, slot: int) -> None:
        """Point `layers` at `slot` of `bank` (on acquiring a slot, and when the bank grows)."""
        for idx, layer in enumerate(self.layers):
            layer.selection, layer.value, layer.branch_sum = (bank.kind(idx, k)[slot] for k in range(len(KINDS)))
        self.version += 1

    def commit_reference(self) -> None:
        """Every layer has written the new reference: it becomes valid."""
        if self._pending is not None:
            self._signature, self._pending = self._pending, None

    def memory_bytes(self) -> int:
        """Bytes of this stream's slot (the pool may hold free slots on top: `pool.memory_bytes()`)."""
        return sum(
            t.numel() * t.element_size()
            for layer in self.layers
            for t in (layer.selection, layer.value, layer.branch_sum)
            if t is not None
        )

    def __repr__(self) -> str:
        return (
            f"CacherState(id={self.id}, slot={self.slot}, frame_idx={self.frame_idx}, has_reference={self.has_reference}, "
            f"reference_frames={self.stats.reference_frames}, selective_frames={self.stats.selective_frames})"
        )
