"""Which row of a tower call is a reference frame, and which reference each selective row reads.

A tower call carries B frames. Each row belongs to a stream (`CacherState`); rows of the same stream
are consecutive frames in order. Planning once per call (at the first encoder layer) turns that into
data the layers only read:

- reference rows run the full layer; the LAST reference row of each stream writes the stream's
  stored reference;
- a selective row compares against the most recent reference row of its stream *earlier in the same
  batch*, or else against the stream's stored reference.

Because a row only depends on rows before it at the same layer, this is exactly the result of
feeding the frames one at a time, while still batching the GEMMs of all rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from stc.cacher.state import CacherState


@dataclass
class CallPlan:
    """Decisions for one tower call (B rows). Built by `plan_call`, read by every layer."""

    states: list[CacherState]
    reference_rows: list[int] = field(default_factory=list)
    selective_rows: list[int] = field(default_factory=list)
    # for each selective row (same order as selective_rows): in-batch reference row, or None = stored
    reference_source: list[Optional[int]] = field(default_factory=list)
    # (row, state) pairs whose layer outputs become the stream's stored reference
    store_rows: list[tuple[int, CacherState]] = field(default_factory=list)
    tokens_to_update: int = 0  # k of every selective row when they all agree (always, for "fixed")
    selective_tokens: list[int] = field(default_factory=list)  # k per selective row (adaptive ratio)
    changes: list[Optional[float]] = field(default_factory=list)  # per row: the adaptive change signal
    index_cache: dict = field(default_factory=dict, repr=False)

    def row_indices(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(reference rows, selective rows) as device index tensors. Cached per row pattern by the
        handle, so repeated calls (and CUDA-graph capture, where a host-to-device copy is not
        allowed) never build them again."""
        key = (tuple(self.reference_rows), tuple(self.selective_rows), str(device))
        if key not in self.index_cache:
            self.index_cache[key] = (
                torch.tensor(self.reference_rows, device=device),
                torch.tensor(self.selective_rows, device=device),
            )
        return self.index_cache[key]

    def commit_references(self) -> None:
        """Called after the last encoder layer: the references this call wrote become valid."""
        for _, state in self.store_rows:
            state.commit_reference()

    @property
    def uniform_tokens(self) -> bool:
        """True when every selective row recomputes the same k (`tokens_to_update`)."""
        return len(set(self.selective_tokens)) <= 1

    @property
    def modes(self) -> tuple[bool, ...]:
        """Per row: True = reference frame."""
        reference = set(self.reference_rows)
        return tuple(row in reference for row in range(len(self.states)))


def plan_call(
    states: Sequence[CacherState],
    hidden: torch.Tensor,
    cache_interval: int,
    tokens_to_update: int,
    index_cache: dict | None = None,
    policy=None,
    rows=None,
) -> CallPlan:
    """Plan one call and advance the streams' counters (a frame counts when it enters the tower).

    Args:
        states: one state per row of `hidden` (a stream may appear in several rows, in frame order).
        hidden: [B, T, D] input of the first encoder layer (only its shape/dtype/device are used).
        cache_interval: N; frame i of a stream is a reference when (i - phase) % N == 0 (or it has none).
        tokens_to_update: k tokens recomputed per layer on selective rows.
        index_cache: the handle's cache of row-index tensors (see `CallPlan.row_indices`).
        policy: a refresh policy (`stc/cacher/refresh.py`); None = the released fixed interval.
        rows: the layer-0 `Rows` of the call (the adaptive policy computes its signal from them).
    """
    batch, num_tokens, width = hidden.shape
    if len(states) != batch:
        raise ValueError(f"STC-Cacher got {batch} frames but {len(states)} stream states; pass one state per frame")
    plan = CallPlan(states=list(states), tokens_to_update=tokens_to_update, index_cache={} if index_cache is None else index_cache)
    if policy is not None:
        policy.begin_call(states, hidden, rows)
    last_reference_row: dict[int, int] = {}
    frame_of: dict[int, int] = {}
    for row, state in enumerate(states):
        frame = frame_of.get(state.id, state.frame_idx)
        frame_of[state.id] = frame + 1
        has_reference = state.id in last_reference_row or state.reference_matches(
            num_tokens, width, hidden.dtype, hidden.device
        )
        if policy is None:
            reference, tokens, change = state.is_scheduled_reference(frame, cache_interval) or not has_reference, tokens_to_update, None
        else:
            decision = policy.decide(row, state, frame, has_reference, num_tokens)
            reference, tokens, change = decision.reference, decision.tokens, decision.change
        plan.changes.append(change)
        if reference:
            plan.reference_rows.append(row)
            last_reference_row[state.id] = row
        else:
            plan.selective_rows.append(row)
            plan.reference_source.append(last_reference_row.get(state.id))
            plan.selective_tokens.append(tokens)
    if policy is not None:
        policy.end_call()
        if plan.selective_tokens and plan.uniform_tokens:
            plan.tokens_to_update = plan.selective_tokens[0]

    stored = {}
    for row in plan.reference_rows:
        stored[plan.states[row].id] = (row, plan.states[row])
    plan.store_rows = list(stored.values())
    for _, state in plan.store_rows:
        state.prepare_buffers(num_tokens, width, hidden.dtype, hidden.device)
    commit_frames(plan, num_tokens)
    return plan


def expected_modes(states: Sequence[CacherState], cache_interval: int) -> tuple[bool, ...]:
    """Per row, whether `plan_call` will make it a reference frame, assuming the stored references
    match the call's shape (the CUDA-graph runner checks the real plan against this prediction)."""
    frame_of: dict[int, int] = {}
    has_reference: dict[int, bool] = {}
    modes = []
    for state in states:
        frame = frame_of.get(state.id, state.frame_idx)
        frame_of[state.id] = frame + 1
        reference = state.is_scheduled_reference(frame, cache_interval) or not has_reference.get(state.id, state.has_reference)
        has_reference[state.id] = True if reference else has_reference.get(state.id, state.has_reference)
        modes.append(reference)
    return tuple(modes)


def commit_frames(plan: CallPlan, num_tokens: int) -> None:
    """Advance frame counters and statistics for every row of `plan` (also used after a graph replay)."""
    reference = set(plan.reference_rows)
    tokens = dict(zip(plan.selective_rows, plan.selective_tokens))
    for row, state in enumerate(plan.states):
        state.frame_idx += 1
        state.stats.tokens_per_frame = num_tokens
        if row in reference:
            state.stats.reference_frames += 1
            state.stats.last_frame_reference = True
        else:
            state.stats.selective_frames += 1
            state.stats.last_frame_reference = False
            state.stats.tokens_recomputed = tokens.get(row, plan.tokens_to_update)
