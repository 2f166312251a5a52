"""STC-Cacher invariants, for EVERY registered ViT family (tiny random towers, float64 on CPU).

Each test compares outputs (never only counters) of the cached tower with a plain path: the
unpatched tower, or the cacher fed one frame per call. Families: tests/stc/families.py.
"""

import random

import pytest
import torch

from stc import CacherConfig, attach_cacher
from tests.stc.families import TOWER_NAMES, TOWERS

EXACT = dict(rtol=0, atol=1e-10)


def one_per_call(family, model, units):
    with torch.no_grad():
        return torch.cat([family.encode(model, units[i : i + 1]) for i in range(units.shape[0])])


@pytest.fixture(params=TOWER_NAMES)
def fam(request):
    torch.manual_seed(0)
    family = TOWERS[request.param]
    return family, family.build()


def test_full_update_ratio_equals_unpatched_tower(fam):
    family, model = fam
    units = family.frames(5)
    expected = one_per_call(family, model, units)
    with attach_cacher(model, CacherConfig(update_ratio=1.0, cache_interval=3)) as stream:
        got = one_per_call(family, model, units)
        assert stream.stats.selective_frames == 3
    # qwen2_vl rotates q/k in float32 (as upstream does), so it matches to float32 precision only
    tol = dict(rtol=1e-5, atol=1e-5) if family.name == "qwen2_vl" else EXACT
    torch.testing.assert_close(got, expected, **tol)


def test_identical_frames_reuse_exactly(fam):
    family, model = fam
    units = family.frames(1).repeat(4, *([1] * (family.frames(1).dim() - 1)))
    expected = one_per_call(family, model, units)
    with attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=4)):
        got = one_per_call(family, model, units)
    tol = dict(rtol=1e-5, atol=1e-5) if family.name == "qwen2_vl" else EXACT
    torch.testing.assert_close(got, expected, **tol)


def test_refresh_schedule_and_selective_outputs_differ_from_dense(fam):
    family, model = fam
    units = family.frames(7, drift=0.3)
    dense = one_per_call(family, model, units)
    kinds = []
    with attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=3)) as stream:
        outs = []
        with torch.no_grad():
            for i in range(units.shape[0]):
                outs.append(family.encode(model, units[i : i + 1]))
                kinds.append(stream.stats.last_frame_reference)
    assert kinds == [True, False, False, True, False, False, True]
    for i, reference in enumerate(kinds):
        close = torch.allclose(outs[i], dense[i : i + 1], atol=1e-6)
        assert close == reference, f"frame {i}: reference={reference} but equal-to-dense={close}"


def test_chunked_calls_equal_one_frame_per_call(fam):
    """Several frames of one stream per call, at random chunkings whose offsets are not aligned to N:
    every frame's output equals the one-frame-per-call run (the chunked-path regression)."""
    family, model = fam
    units = family.frames(11, drift=0.2)
    rng = random.Random(1)
    for interval in (2, 3, 4):
        config = CacherConfig(update_ratio=0.25, cache_interval=interval)
        with attach_cacher(model, config):
            single = one_per_call(family, model, units)
        for trial in range(2):
            sizes, left = [], units.shape[0]
            while left:
                sizes.append(min(left, rng.randint(1, 5)))
                left -= sizes[-1]
            with attach_cacher(model, config), torch.no_grad():
                chunks = torch.split(units, sizes)
                got = torch.cat([family.encode(model, chunk) for chunk in chunks])
            torch.testing.assert_close(got, single, **EXACT, msg=lambda m: f"N={interval} chunks={sizes}: {m}")


def test_two_interleaved_streams_equal_each_alone(fam):
    family, model = fam
    a, b = family.frames(5, seed=1, drift=0.2), family.frames(5, seed=2, drift=0.2)
    config = CacherConfig(update_ratio=0.25, cache_interval=2)
    with attach_cacher(model, config):
        alone_a = one_per_call(family, model, a)
    with attach_cacher(model, config):
        alone_b = one_per_call(family, model, b)
    handle = attach_cacher(model, config)
    sa, sb = handle.new_stream(), handle.new_stream()
    got_a, got_b = [], []
    with torch.no_grad():
        for i in range(5):
            with handle.use(sa):
                got_a.append(family.encode(model, a[i : i + 1]))
            with handle.use(sb):
                got_b.append(family.encode(model, b[i : i + 1]))
    handle.detach()
    torch.testing.assert_close(torch.cat(got_a), alone_a, **EXACT)
    torch.testing.assert_close(torch.cat(got_b), alone_b, **EXACT)


@pytest.mark.parametrize("tower", [n for n in TOWER_NAMES if n != "qwen2_vl"])
def test_batched_streams_equal_each_alone(tower):
    """One call carries one frame of each of 3 streams (not for Qwen2-VL: a call there is one video)."""
    torch.manual_seed(0)
    family = TOWERS[tower]
    model = family.build()
    clips = [family.frames(5, seed=s, drift=0.2) for s in range(3)]
    config = CacherConfig(update_ratio=0.25, cache_interval=2)
    alone = []
    for clip in clips:
        with attach_cacher(model, config):
            alone.append(one_per_call(family, model, clip))
    handle = attach_cacher(model, config)
    streams = [handle.new_stream() for _ in clips]
    with torch.no_grad(), handle.use(streams):
        got = [family.encode(model, torch.cat([c[i : i + 1] for c in clips])) for i in range(5)]
    handle.detach()
    for s in range(3):
        torch.testing.assert_close(torch.stack([g[s] for g in got]), alone[s], **EXACT)


def test_detach_is_bit_identical(fam):
    family, model = fam
    units = family.frames(3, drift=0.2)
    before = one_per_call(family, model, units)
    handle = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=2))
    one_per_call(family, model, units)
    handle.detach()
    assert torch.equal(one_per_call(family, model, units), before)
    with pytest.raises(RuntimeError, match="already has STC-Cacher"):
        second = attach_cacher(model, CacherConfig())
        attach_cacher(model, CacherConfig())
    second.detach()


def test_bypass_runs_the_plain_tower_and_keeps_the_schedule(fam):
    family, model = fam
    units = family.frames(4, drift=0.2)
    still = family.frames(1, seed=9)
    dense_still = one_per_call(family, model, still)
    config = CacherConfig(update_ratio=0.25, cache_interval=2)
    with attach_cacher(model, config):
        plain = one_per_call(family, model, units)
    handle = attach_cacher(model, config)
    outs = []
    with torch.no_grad():
        for i in range(4):
            outs.append(family.encode(model, units[i : i + 1]))
            with handle.bypass():
                torch.testing.assert_close(family.encode(model, still), dense_still, **EXACT)
    assert handle.stream.frame_idx == 4
    handle.detach()
    torch.testing.assert_close(torch.cat(outs), plain, **EXACT)


def test_failure_mid_tower_makes_the_next_frame_a_reference(fam):
    family, model = fam
    units = family.frames(4, drift=0.2)
    handle = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=3))
    last = handle.layers[-1]
    with torch.no_grad():
        family.encode(model, units[:1])  # frame 0: reference
        assert handle.stream.has_reference
        hook = last.register_forward_pre_hook(lambda *_: (_ for _ in ()).throw(RuntimeError("boom")))
        with pytest.raises(RuntimeError, match="boom"):
            family.encode(model, units[3:4])  # frame 1 (selective) fails before the last layer
        hook.remove()
        family.encode(model, units[1:2])
    assert handle.stream.stats.last_frame_reference is False  # a failed selective frame broke nothing
    # a reference frame that fails half-way must not leave a half-written reference behind
    handle.stream.reset()
    with torch.no_grad():
        family.encode(model, units[:1])
        handle.stream.frame_idx = 3  # the next frame is a scheduled reference
        hook = last.register_forward_pre_hook(lambda *_: (_ for _ in ()).throw(RuntimeError("boom")))
        with pytest.raises(RuntimeError):
            family.encode(model, units[1:2])
        hook.remove()
        assert not handle.stream.has_reference
        family.encode(model, units[2:3])
    assert handle.stream.stats.last_frame_reference is True
    handle.detach()


@pytest.mark.parametrize("tower", [n for n in TOWER_NAMES if TOWERS[n].prefix_tokens])
def test_prefix_tokens_are_recomputed_only_when_asked(tower, monkeypatch):
    import stc.cacher.layer as layer_math

    torch.manual_seed(0)
    family = TOWERS[tower]
    model = family.build()
    units = family.frames(3, drift=0.3)
    picked = []
    original = layer_math.dynamic_indices
    monkeypatch.setattr(layer_math, "dynamic_indices", lambda *a, **k: picked.append(original(*a, **k)) or picked[-1])
    for recompute in (False, True):
        picked.clear()
        with attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=3, recompute_prefix=recompute)) as s:
            one_per_call(family, model, units)
            assert s.stats.selective_frames == 2
        assert picked, "selective path did not run"
        has_prefix = [bool((idx < family.prefix_tokens).any()) for idx in picked]
        assert all(has_prefix) if recompute else not any(has_prefix[:1]), (recompute, has_prefix)


@pytest.mark.parametrize("tower", [n for n in TOWER_NAMES if n != "qwen2_vl"])
def test_fused_functions_compute_the_eager_layer_on_every_fusable_family(tower):
    """The functions `fused=True` compiles on CUDA (stacked q/v and q/k/v GEMMs, layer scales), run
    uncompiled on CPU, give the eager cacher's layer-0 outputs and references (reference + selective)."""
    from stc.cacher import fused
    from stc.cacher.state import LayerReference

    torch.manual_seed(0)
    family = TOWERS[tower]
    model = family.build()
    units = family.frames(2, drift=0.3)
    config = CacherConfig(update_ratio=0.25, cache_interval=2)
    handle = attach_cacher(model, config)
    layer = handle.layers[0]
    seen = []
    hooks = [layer.register_forward_pre_hook(lambda m, args: seen.append(("in", args[0]))),
             layer.register_forward_hook(lambda m, args, out: seen.append(("out", out)))]
    with torch.no_grad():
        family.encode(model, units[:1])
        stored = {name: getattr(handle.stream.layers[0], name).clone() for name in LayerReference.__slots__}
        family.encode(model, units[1:2])
    for hook in hooks:
        hook.remove()
    (_, h0), (_, out0), (_, h1), (_, out1) = seen
    parts = handle.parts[0]
    act = fused.fusable(handle.anatomy, parts)
    assert act is not None
    selective_w, reference_w = fused.stacked_weights(handle.anatomy.fused_weights(parts))
    k = config.tokens_to_update(h0.shape[1])
    constants = fused._constants(parts, act, config, 0)
    with torch.no_grad():
        ref_out, stores = fused._reference_layer(h0, None, *reference_w, k, *constants)
    mine = dict(zip(LayerReference.__slots__, stores[:, 0]))
    with torch.no_grad():
        sel_out = fused._selective_layer(h1, stored["selection"][None], stored["value"][None], stored["branch_sum"][None],
                                         *selective_w, k, *constants)
    handle.detach()
    torch.testing.assert_close(ref_out, out0, **EXACT)
    for name in stored:
        torch.testing.assert_close(mine[name], stored[name], **EXACT)
    torch.testing.assert_close(sel_out, out1, **EXACT)
