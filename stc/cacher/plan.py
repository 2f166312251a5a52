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

The plan also carries `CallIndex`: the device index tensors the layers need to run ALL reference rows
of the call as one batched dense pass and ALL selective rows as one batched selective pass (whatever
reference each reads), and to read/write the streams' references in the handle's slot pool with one
index (or a slice) per layer. It is built once per row pattern and cached by the handle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from stc.cacher.state import CacherState


@dataclass
class CallIndex:
    """Index data of one call's row pattern (device tensors + the host facts that pick views over copies).

    - ref_rows [R], sel_rows [S]: batch rows of each kind, in order; `inverse` [B] maps batch row b to
      its position in cat(reference outputs, selective outputs).
    - Per selective row: `from_call` [S] (bool) = reads an earlier reference row of this call, at
      position `call_pos` [S] among the reference rows; else reads its stream's stored reference at
      slot `sel_slots` [S]. `stored_slice`: the slots as a slice when they are one slot for every row
      (broadcast [1]) or consecutive ascending ([S], no copy); None = `index_select` by `sel_slots`.
      `all_from_call` / `any_from_call`: no / some row reads a reference row of this call.
    - Stores: the reference rows at positions `store_pos` [W] (None = all R, in order) are written to
      slots `store_slots` [W] (`store_slice` when consecutive ascending; `store_slot_list` on the host).
    """

    ref_rows: torch.Tensor
    sel_rows: torch.Tensor
    inverse: torch.Tensor
    from_call: torch.Tensor
    call_pos: torch.Tensor
    sel_slots: torch.Tensor
    stored_slice: Optional[slice]
    all_from_call: bool
    any_from_call: bool
    shared_call_pos: Optional[int]  # every selective row reads this one reference row of the call
    store_pos: Optional[torch.Tensor]
    store_pos_slice: Optional[slice]  # store_pos as a slice of the reference rows when consecutive (a view)
    store_slots: torch.Tensor
    store_slice: Optional[slice]
    store_slot_list: tuple[int, ...]


def _as_slice(slots: Sequence[int]) -> Optional[slice]:
    """slots as a slice of the pool: one slot for all (broadcast), or consecutive ascending; else None."""
    if not slots:
        return None
    if len(set(slots)) == 1:
        return slice(slots[0], slots[0] + 1)
    if list(slots) == list(range(slots[0], slots[0] + len(slots))):
        return slice(slots[0], slots[0] + len(slots))
    return None


def build_call_index(plan: "CallPlan", device) -> CallIndex:
    reference, selective = plan.reference_rows, plan.selective_rows
    position = {row: i for i, row in enumerate(reference)}
    order = reference + selective
    inverse = [0] * len(order)
    for i, row in enumerate(order):
        inverse[row] = i
    sources = plan.reference_source
    call_pos = [position[s] if s is not None else 0 for s in sources]
    sel_slots = [plan.states[row].slot for row in selective]
    stored_slots = [slot for slot, s in zip(sel_slots, sources) if s is None]
    store_pos = [position[row] for row, _ in plan.store_rows]
    store_slots = [state.slot for _, state in plan.store_rows]
    call_sources = {s for s in sources if s is not None}
    tensor = lambda values, dtype=torch.long: torch.tensor(values, dtype=dtype, device=device)  # noqa: E731
    return CallIndex(
        ref_rows=tensor(reference), sel_rows=tensor(selective), inverse=tensor(inverse),
        from_call=tensor([s is not None for s in sources], torch.bool), call_pos=tensor(call_pos),
        sel_slots=tensor(sel_slots),
        stored_slice=_as_slice(sel_slots) if len(set(stored_slots)) != 1 else _as_slice(stored_slots),
        all_from_call=not stored_slots, any_from_call=bool(call_sources),
        shared_call_pos=position[sources[0]] if not stored_slots and len(call_sources) == 1 else None,
        store_pos=None if store_pos == list(range(len(reference))) else tensor(store_pos),
        store_pos_slice=_as_slice(store_pos) if len(store_pos) == len(set(store_pos)) else None,
        store_slots=tensor(store_slots), store_slice=_as_slice(store_slots) if len(store_slots) == len(set(store_slots)) else None,
        store_slot_list=tuple(store_slots),
    )


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
    index: Optional[CallIndex] = field(default=None, repr=False)  # held here: a captured graph reads these tensors
    bank: object = field(default=None, repr=False)  # the SlotBank every stream of this call lives in
    _token_groups: Optional[list] = field(default=None, repr=False)  # see `token_groups`

    def commit_references(self) -> None:
        """Called after the last encoder layer: the references this call wrote become valid."""
        for _, state in self.store_rows:
            state.commit_reference()

    @property
    def uniform_tokens(self) -> bool:
        """True when every selective row recomputes the same k (`tokens_to_update`)."""
        return len(set(self.selective_tokens)) <= 1

    def token_groups(self, device) -> list[tuple[int, torch.Tensor]]:
        """(k, positions among the selective rows) per distinct k, ascending; built once per call (every
        layer of the call reads the same groups)."""
        if self._token_groups is None:
            self._token_groups = [
                (k, torch.tensor([i for i, tokens in enumerate(self.selective_tokens) if tokens == k], device=device))
                for k in sorted(set(self.selective_tokens))
            ]
        return self._token_groups

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
        index_cache: the handle's cache of `CallIndex` objects (see `_cached_index`).
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
    banks = {id(state.bank) for state in plan.states}
    if len(banks) != 1 or plan.states[0].bank is None:
        raise RuntimeError("STC-Cacher: the streams of one call must share one reference pool (streams of one handle)")
    plan.bank = plan.states[0].bank
    plan.index = _cached_index(plan, hidden.device)
    commit_frames(plan, num_tokens)
    return plan


INDEX_CACHE_SIZE = 256


def _cached_index(plan: CallPlan, device) -> CallIndex:
    """The call's `CallIndex`, from the handle's cache (built once per row pattern and slots, so repeated
    calls, and CUDA-graph capture where a host-to-device copy is not allowed, never build it again).
    Bounded LRU: a plan keeps its own index alive, so evicting never frees what a graph reads."""
    cache = plan.index_cache
    key = (tuple(plan.reference_rows), tuple(plan.selective_rows), tuple(plan.reference_source),
           tuple(state.slot for state in plan.states), tuple(row for row, _ in plan.store_rows), str(device))
    if key in cache:
        cache[key] = cache.pop(key)  # most recently used last
        return cache[key]
    index = cache[key] = build_call_index(plan, device)
    while len(cache) > INDEX_CACHE_SIZE:
        cache.pop(next(iter(cache)))
    return index


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
