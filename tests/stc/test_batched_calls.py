"""Batched STC-Cacher calls (several frames of one stream per call; several streams per call, joining
and leaving) equal one frame per call, on every registered ViT family, float64 on CPU, <= 1e-10.

Two layer paths are checked: the eager layers (`stc/cacher/layer.py`) and the functions that
`fused=True` compiles on CUDA (`stc/cacher/fused.py`), run here uncompiled through the same dispatch
(`FusedSelectiveLayer(compile=False)`), so the batched reference/selective/mixed math and the slot
pool indexing are exercised end to end without a GPU. Chunkings are random (1-9 frames per call), so
chunk starts are not aligned to N.
"""

import gc
import random

import pytest
import torch

from stc import CacherConfig, attach_cacher
from stc.cacher.fused import FusedSelectiveLayer
from tests.stc.families import TOWER_NAMES, TOWERS

EXACT = dict(rtol=0, atol=1e-10)
FUSABLE = [n for n in TOWER_NAMES if n != "qwen2_vl"]  # the fused functions need LayerNorm + q/k/v + fc1/fc2
PATHS = ["eager", "fused"]


def alone(family, model, units, config, phase=0):
    """The plain reference: a fresh handle, this stream alone, one frame per call."""
    handle = attach_cacher(model, config)
    stream = handle.new_stream(phase=phase)
    with torch.no_grad(), handle.use(stream):
        out = torch.cat([family.encode(model, units[i : i + 1]) for i in range(units.shape[0])])
    handle.detach()
    return out


def attach(model, config, path):
    handle = attach_cacher(model, config)
    if path == "fused":
        assert handle.activation is not None
        handle.fused = FusedSelectiveLayer(compile=False)
    return handle


def random_sizes(rng, total, low=1, high=9):
    sizes, left = [], total
    while left:
        sizes.append(min(left, rng.randint(low, high)))
        left -= sizes[-1]
    return sizes


def cases():
    for tower in TOWER_NAMES:
        for path in PATHS:
            if path == "fused" and tower not in FUSABLE:
                continue
            yield pytest.param(tower, path, id=f"{tower}-{path}")


@pytest.mark.parametrize("tower,path", list(cases()))
def test_chunked_one_stream_equals_one_frame_per_call(tower, path):
    """One stream, 1-9 frames per call (mixed reference + selective rows, several references per call),
    N in {2, 3, 4}; the stream starts at a frame offset that is not a multiple of N (its first call
    holds a reference that is not at frame 0 of the schedule's grid)."""
    torch.manual_seed(0)
    family = TOWERS[tower]
    model = family.build()
    units = family.frames(16, drift=0.2, seed=4)
    rng = random.Random(7)
    unaligned = 0
    for interval in (2, 3, 4):
        config = CacherConfig(update_ratio=0.25, cache_interval=interval)
        phase = rng.randrange(1, interval)  # schedule offset: references at frames = phase (mod N), after frame 0
        expected = alone(family, model, units, config, phase=phase)
        for trial in range(2):
            sizes = random_sizes(rng, units.shape[0])
            starts = [sum(sizes[:i]) for i in range(len(sizes))]
            unaligned += sum((s - phase) % interval != 0 for s in starts)
            handle = attach(model, config, path)
            stream = handle.new_stream(phase=phase)
            with torch.no_grad(), handle.use(stream):
                got = torch.cat([family.encode(model, chunk) for chunk in torch.split(units, sizes)])
            if path == "fused":  # in-call references: the fused handle takes the batched layer (fused.py says why)
                assert not handle.fused.failed
            handle.detach()
            torch.testing.assert_close(got, expected, **EXACT, msg=lambda m: f"{tower}/{path} N={interval} {sizes}: {m}")
    assert unaligned > 3


def _schedule(rng, lifetimes, batched):
    """Calls as lists of (stream, frames): each live stream contributes 1-3 frames (or sits the call
    out), in a shuffled stream order; one stream per call when not `batched` (Qwen2-VL: a call is one
    video). lifetimes: stream -> (first call, total frames)."""
    left = {s: total for s, (_, total) in lifetimes.items()}
    calls, t = [], 0
    while any(left.values()):
        live = [s for s, (join, _) in lifetimes.items() if join <= t and left[s]]
        rng.shuffle(live)
        call = []
        for s in live[: None if batched else 1]:
            if rng.random() < 0.2 and len(live) > 1:
                continue
            n = min(left[s], rng.randint(1, 3))
            call.append((s, n))
            left[s] -= n
        if call:
            calls.append(call)
        t += 1
    return calls


def _streams_case(tower, path, batched):
    torch.manual_seed(0)
    family = TOWERS[tower]
    model = family.build()
    rng = random.Random(11 if batched else 12)
    interval = 3
    config = CacherConfig(update_ratio=0.25, cache_interval=interval)
    # stream -> (call it joins at, frames); later streams join after earlier ones left
    lifetimes = {0: (0, 9), 1: (0, 5), 2: (1, 8), 3: (2, 4), 4: (6, 7), 5: (7, 6), 6: (9, 5)}
    if not batched:  # one stream per call: fewer frames do the same (Qwen2-VL calls are slower)
        lifetimes = {0: (0, 6), 1: (0, 4), 2: (1, 5), 3: (3, 4), 4: (5, 5)}
    clips = {s: family.frames(total, drift=0.2, seed=20 + s) for s, (_, total) in lifetimes.items()}
    phases = {s: s % interval for s in lifetimes}
    expected = {s: alone(family, model, clips[s], config, phases[s]) for s in lifetimes}

    handle = attach(model, config, path)
    states, used, outs = {}, {s: 0 for s in lifetimes}, {s: [] for s in lifetimes}
    slices = {"view": 0, "index": 0}
    max_live, max_slots = 0, 0
    for call in _schedule(rng, lifetimes, batched):
        rows, units = [], []
        for s, n in call:
            if s not in states:
                states[s] = handle.new_stream(phase=phases[s])
            rows += [states[s]] * n
            units.append(clips[s][used[s] : used[s] + n])
            used[s] += n
        with torch.no_grad(), handle.use(rows):
            out = family.encode(model, torch.cat(units))
        index = handle._plan.index
        if handle._plan.selective_rows and not index.all_from_call:
            slices["view" if index.stored_slice is not None else "index"] += 1
        offset = 0
        for s, n in call:
            outs[s].append(out[offset : offset + n])
            offset += n
        for s, n in call:  # a stream whose frames are done leaves: released, or just dropped
            if used[s] == lifetimes[s][1] and s in states:
                if s % 2:
                    states.pop(s).release()
                else:
                    del states[s]
                    gc.collect()
        max_live = max(max_live, len(states))
        max_slots = max(max_slots, max(b.capacity for b in handle.pool.banks.values()) if handle.pool.banks else 0)
    if path == "fused":
        assert not handle.fused.failed
    for s in lifetimes:
        torch.testing.assert_close(torch.cat(outs[s]), expected[s], **EXACT, msg=lambda m: f"{tower}/{path} stream {s}: {m}")
    # leavers gave their slots back: the pool never held more than twice the live streams (it doubles)
    assert max_slots <= 2 * max(max_live, 1) + 1, (max_slots, max_live)
    live_banks = [b for b in handle.pool.banks.values() if b.owners]
    assert len(handle.pool.banks) == len(live_banks)  # a bank without streams is dropped
    handle.detach()
    return slices


@pytest.mark.parametrize("tower,path", [c for c in cases() if c.values[0] != "qwen2_vl"])
def test_batched_streams_joining_and_leaving_equal_each_alone(tower, path):
    """Each call carries 1-3 frames of several streams in shuffled order (so their slots are read by
    index and by slice), streams join and leave between calls (slots are reused), phases differ."""
    slices = _streams_case(tower, path, batched=True)
    assert slices["view"] and slices["index"], slices  # both slot-read paths ran


@pytest.mark.parametrize("tower,path", [c for c in cases() if c.values[0] == "qwen2_vl"])
def test_interleaved_streams_joining_and_leaving_equal_each_alone(tower, path):
    """Qwen2-VL (a call is one video): one stream per call, chunked, streams joining and leaving; each
    stream's outputs equal it alone (asserted in `_streams_case`), and with one stream per call its
    stored references are always read as one slice of the pool, never by index."""
    slices = _streams_case(tower, path, batched=False)
    assert slices["view"] > 0 and slices["index"] == 0, slices


def test_mixed_call_runs_one_dense_and_one_selective_pass_per_layer(towers):
    """A call of 8 frames with 2 reference rows and 6 selective rows projects queries twice per layer:
    once for the 2 x T reference tokens, once for the 6 x k recomputed tokens (no per-row passes)."""
    from tests.stc.test_cacher import count_query_rows

    model = towers.siglip()
    frames = towers.frames(10, drift=0.2)
    handle = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=4))
    with torch.no_grad():
        head = model(pixel_values=frames[:2]).last_hidden_state  # frames 0 (reference), 1
        rows, hooks = count_query_rows(model)
        tail = model(pixel_values=frames[2:10]).last_hidden_state  # frames 2..9: references at 4 and 8
        for hook in hooks:
            hook.remove()
    tokens, k = 16, 4
    assert handle._plan.reference_rows == [2, 6]
    assert rows == [2 * tokens, 6 * k] * 3, rows
    handle.detach()
    # the batched passes give what one frame per call gives (the 8-frame call starts at frame 2, off N's grid)
    handle = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=4))
    with torch.no_grad():
        single = torch.cat([model(pixel_values=frames[i : i + 1]).last_hidden_state for i in range(10)])
    handle.detach()
    torch.testing.assert_close(torch.cat([head, tail]), single, rtol=1e-5, atol=1e-5)


def test_pool_grows_keeps_references_and_bumps_versions(towers):
    """Joining streams grow the slot pool by doubling: stored references survive the move and every
    stream's version changes (CUDA graphs keyed on the old addresses are never replayed)."""
    model = towers.siglip()
    frames = towers.frames(3, drift=0.2)
    handle = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=4))
    first = handle.new_stream()
    with torch.no_grad(), handle.use(first):
        model(pixel_values=frames[:1])
    kept = first.layers[1].value.clone()
    version = first.version
    others = [handle.new_stream() for _ in range(3)]
    with torch.no_grad(), handle.use(others):
        model(pixel_values=frames[:3])
    bank = first.bank
    assert bank.capacity == 4 and {s.slot for s in [first, *others]} == {0, 1, 2, 3}
    assert first.version != version and first.layers[1].value.data_ptr() == bank.kind(1, 1)[first.slot].data_ptr()
    torch.testing.assert_close(first.layers[1].value, kept, rtol=0, atol=0)
    others[1].release()
    late = handle.new_stream()
    with torch.no_grad(), handle.use(late):
        model(pixel_values=frames[:1])
    assert late.slot == 2 and bank.capacity == 4  # the freed slot is reused, no growth
    handle.detach()


@pytest.mark.parametrize("tower,path", [c for c in cases() if c.values[0] in ("siglip", "clip")])
@pytest.mark.parametrize("interval,count", [(4, 7), (2, 11)], ids=["N4-7streams", "N2-11streams"])
def test_staggered_streams_equal_each_alone(tower, path, interval, count):
    """stagger_streams: one frame of each stream per call, refresh phases spread over the streams, so
    every call after the first mixes reference rows and selective rows at scattered slots. The
    selective rows read stored references only (no in-call reference: the fused mixed function's
    `from_call=None` branch, gathering the scattered slots inside the function), and at N=2 with 11
    streams 5-6 streams refresh per call at scattered slots (more than SLOT_COPIES: the index_copy_
    write-back). Each stream equals it alone, one frame per call, at its phase."""
    from stc.cacher.layer import SLOT_COPIES

    torch.manual_seed(0)
    family = TOWERS[tower]
    model = family.build()
    config = CacherConfig(update_ratio=0.25, cache_interval=interval, stagger_streams=True)
    clips = [family.frames(6, drift=0.2, seed=40 + s) for s in range(count)]
    handle = attach(model, config, path)
    handle.new_stream()  # the default stream took phase 0: the first stream below starts at phase 1
    streams = [handle.new_stream() for _ in clips]
    outs, scattered_mixed, many_writes = [], 0, 0
    for i in range(6):
        with torch.no_grad(), handle.use(streams):
            outs.append(family.encode(model, torch.cat([c[i : i + 1] for c in clips])))
        plan, index = handle._plan, handle._plan.index
        if plan.reference_rows and plan.selective_rows:
            scattered_mixed += not index.any_from_call and index.stored_slice is None
            many_writes += index.store_slice is None and len(index.store_slot_list) > SLOT_COPIES
    assert scattered_mixed == 5, scattered_mixed  # every call after the first
    assert (many_writes > 0) == (interval == 2), many_writes
    if path == "fused":
        assert not handle.fused.failed and handle.fused.calls["mixed"] > 0
    handle.detach()
    for s, (clip, stream) in enumerate(zip(clips, streams)):
        expected = alone(family, model, clip, config, stream.phase)
        torch.testing.assert_close(torch.stack([o[s] for o in outs]), expected, **EXACT,
                                   msg=lambda m: f"{tower}/{path} N={interval} stream {s}: {m}")


@pytest.mark.parametrize("tower,path", [c for c in cases() if c.values[0] != "qwen2_vl"])
def test_lockstep_streams_in_scattered_slot_order_equal_each_alone(tower, path):
    """One frame of each of 5 streams per call, all at one phase, passed in an order that is not their
    slot order (shuffled per call): the selective calls are all-selective and read their stored
    references at scattered slots (the fused path gathers them inside the selective function). Each
    stream equals it alone."""
    torch.manual_seed(0)
    family = TOWERS[tower]
    model = family.build()
    config = CacherConfig(update_ratio=0.25, cache_interval=3)
    clips = [family.frames(7, drift=0.2, seed=60 + s) for s in range(5)]
    handle = attach(model, config, path)
    streams = [handle.new_stream(phase=0) for _ in clips]
    rng = random.Random(5)
    outs, scattered = [[] for _ in clips], 0
    for i in range(7):
        order = rng.sample(range(len(clips)), len(clips))
        with torch.no_grad(), handle.use([streams[s] for s in order]):
            out = family.encode(model, torch.cat([clips[s][i : i + 1] for s in order]))
        plan = handle._plan
        scattered += not plan.reference_rows and plan.index.stored_slice is None
        for row, s in enumerate(order):
            outs[s].append(out[row])
    assert scattered >= 3, scattered  # most selective calls read their slots by index
    if path == "fused":
        assert not handle.fused.failed and handle.fused.calls["selective"] > 0
    handle.detach()
    for s, clip in enumerate(clips):
        torch.testing.assert_close(torch.stack(outs[s]), alone(family, model, clip, config), **EXACT,
                                   msg=lambda m: f"{tower}/{path} stream {s}: {m}")
