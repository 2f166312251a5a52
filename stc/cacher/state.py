"""Per-stream STC-Cacher state: frame counter, counters, and per-layer reference buffers.

One `CacherState` per video stream. It is created by a `CacherHandle` (so it knows how many layers
the tower has) and passed to the tower explicitly (`handle.use(state)`); several states can share one
tower, and a batch may mix frames of different states. Nothing here is global.

Reference buffers are allocated on the first reference frame and then written IN PLACE on every later
reference frame, so their addresses never change: CUDA graphs captured for selective frames keep
reading the current reference. They are re-allocated (and `version` bumped, invalidating graphs) only
when the token count, width, dtype or device changes.
"""

from __future__ import annotations

import itertools
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
    """Reference tensors of one encoder layer, each [T, D]:

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


class CacherState:
    """Per-stream state. `frame_idx` counts frames since `reset()`; frame i is a reference frame when
    (i - phase) % cache_interval == 0 or when no reference exists yet (so frame 0 always is).

    `phase` staggers the refreshes of streams that share batched calls: with S streams in lockstep and
    phase i for stream i, each call holds about S/N reference rows instead of all S every N-th call."""

    def __init__(self, num_layers: int, owner_id: int, phase: int = 0):
        self.id = next(_state_ids)
        self.owner_id = owner_id
        self.phase = phase
        self.layers = [LayerReference() for _ in range(num_layers)]
        self.frame_idx = 0
        self.version = 0
        self.stats = CacherStats()
        self.refresh = RefreshState()  # the adaptive refresh policy's per-stream data
        self._signature = None  # (T, D, dtype, device) of the stored reference, once complete
        self._pending = None  # signature of a reference being written by the call in flight

    def reset(self) -> None:
        """Start a new video: the next frame is a reference frame. Buffers are kept for reuse."""
        self.frame_idx = 0
        self.stats = CacherStats()
        self.refresh.reset()
        self._signature = self._pending = None

    def is_scheduled_reference(self, frame: int, cache_interval: int) -> bool:
        return (frame - self.phase) % cache_interval == 0

    @property
    def has_reference(self) -> bool:
        return self._signature is not None

    @property
    def reference_signature(self):
        """(T, D, dtype, device) of the stored reference, or None before the first reference frame."""
        return self._signature

    def reference_matches(self, num_tokens: int, width: int, dtype: torch.dtype, device: torch.device) -> bool:
        return self._signature == (num_tokens, width, dtype, torch.device(device))

    def prepare_buffers(self, num_tokens: int, width: int, dtype: torch.dtype, device: torch.device) -> None:
        """Make sure every layer has [T, D] buffers of this signature; called before writing a reference.
        The stored reference is invalid from here until `commit_reference()` (after the last layer
        wrote it): a call that fails mid-tower leaves the stream so that its next frame is a reference."""
        signature = (num_tokens, width, dtype, torch.device(device))
        first = self.layers[0].value
        if first is None or (first.shape, first.dtype, first.device) != ((num_tokens, width), dtype, signature[3]):
            for layer in self.layers:
                for name in LayerReference.__slots__:
                    setattr(layer, name, torch.empty(num_tokens, width, dtype=dtype, device=device))
            self.version += 1
        self._signature, self._pending = None, signature

    def commit_reference(self) -> None:
        """Every layer has written the new reference: it becomes valid."""
        if self._pending is not None:
            self._signature, self._pending = self._pending, None

    def memory_bytes(self) -> int:
        """Bytes held by the reference buffers of this stream."""
        return sum(
            t.numel() * t.element_size()
            for layer in self.layers
            for t in (layer.selection, layer.value, layer.branch_sum)
            if t is not None
        )

    def __repr__(self) -> str:
        return (
            f"CacherState(id={self.id}, frame_idx={self.frame_idx}, has_reference={self.has_reference}, "
            f"reference_frames={self.stats.reference_frames}, selective_frames={self.stats.selective_frames})"
        )
