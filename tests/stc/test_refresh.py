"""Refresh policies (stc/cacher/refresh.py): the adaptive policy is causal, respects its interval
bounds on adversarial sequences, decides the same for chunked calls as for one frame per call (and
gives the same outputs), for every ViT family; the fixed policy is today's rule whatever the adaptive
knobs say."""

import random

import pytest
import torch

from stc import CacherConfig, attach_cacher
from stc.cacher.refresh import AdaptiveRefresh, RefreshState
from tests.stc.families import TOWER_NAMES, TOWERS

EXACT = dict(rtol=0, atol=1e-10)
ADAPTIVE = dict(refresh="adaptive", update_ratio=0.25, change_tau=0.8, refresh_threshold=0.3, min_interval=2,
                max_interval=5)


def scene_sequence(family, count, cuts, seed=0, drift=0.02):
    """Drifting frames with hard cuts (a fresh random scene) at the given indices."""
    units = family.frames(count, drift=drift, seed=seed)
    for cut in cuts:
        fresh = family.frames(count - cut, drift=drift, seed=seed + 100 + cut)
        units[cut:] = fresh
    return units


def run_chunked(family, model, config, units, sizes):
    """Feed `units` in chunks of the given sizes; returns (outputs, per-frame reference flags, k per frame)."""
    outs, modes, tokens = [], [], []
    handle = attach_cacher(model, config)
    try:
        start = 0
        with torch.no_grad():
            for size in sizes:
                outs.append(family.encode(model, units[start : start + size]))
                plan = handle._plan
                k = dict(zip(plan.selective_rows, plan.selective_tokens))
                modes += [row in plan.reference_rows for row in range(size)]
                tokens += [k.get(row) for row in range(size)]
                start += size
    finally:
        handle.detach()
    return torch.cat(outs), modes, tokens


def unaligned_sizes(total, seed):
    rng, sizes = random.Random(seed), []
    while sum(sizes) < total:
        sizes.append(min(rng.choice([1, 2, 3, 5]), total - sum(sizes)))
    return sizes


@pytest.fixture(params=TOWER_NAMES)
def fam(request):
    torch.manual_seed(0)
    family = TOWERS[request.param]
    return family, family.build()


@pytest.mark.parametrize("max_ratio", [None, 0.75])
def test_adaptive_chunked_calls_equal_one_frame_per_call(fam, max_ratio):
    family, model = fam
    # a sensitive tau so that drift alone changes a varying share of tokens (k varies inside chunks)
    config = CacherConfig(**{**ADAPTIVE, "change_tau": 0.99, "refresh_threshold": 0.6}, max_update_ratio=max_ratio)
    units = scene_sequence(family, 13, cuts=(4, 9), drift=0.1)
    single, single_modes, single_k = run_chunked(family, model, config, units, [1] * 13)
    assert any(single_modes[1:]) and not all(single_modes), "the sequence must exercise both frame kinds"
    if max_ratio is not None:
        assert len({k for k in single_k if k is not None}) > 1, "the adaptive ratio must vary k on this sequence"
    for seed in (1, 2):
        got, modes, tokens = run_chunked(family, model, config, units, unaligned_sizes(13, seed))
        assert modes == single_modes and tokens == single_k
        tol = dict(rtol=1e-5, atol=1e-5) if family.name == "qwen2_vl" else EXACT
        torch.testing.assert_close(got, single, **tol)


def test_adaptive_refreshes_at_scene_cuts(fam):
    family, model = fam
    config = CacherConfig(**{**ADAPTIVE, "min_interval": 1, "max_interval": 50})
    units = scene_sequence(family, 12, cuts=(5, 9))
    _, modes, _ = run_chunked(family, model, config, units, [1] * 12)
    assert [i for i, m in enumerate(modes) if m] == [0, 5, 9]


def test_decisions_never_read_later_frames(fam):
    """Frames 0..6 identical, later frames different: decisions and outputs for frames <= 6 must not
    change, whether the later frames arrive in the same call or not."""
    family, model = fam
    config = CacherConfig(**ADAPTIVE)
    a = scene_sequence(family, 10, cuts=(7,), seed=0)
    b = a.clone()
    b[7:] = family.frames(3, drift=0.5, seed=77)
    out_a, modes_a, k_a = run_chunked(family, model, config, a, [3, 5, 2])
    out_b, modes_b, k_b = run_chunked(family, model, config, b, [3, 5, 2])
    assert modes_a[:7] == modes_b[:7] and k_a[:7] == k_b[:7]
    torch.testing.assert_close(out_a[:7], out_b[:7], **EXACT)


def test_fixed_policy_ignores_adaptive_knobs(fam):
    family, model = fam
    units = family.frames(7, drift=0.3)
    base, base_modes, _ = run_chunked(family, model, CacherConfig(update_ratio=0.25, cache_interval=3), units, [2, 3, 2])
    odd = CacherConfig(update_ratio=0.25, cache_interval=3, change_tau=0.1, refresh_threshold=0.01, min_interval=4,
                       max_interval=9, max_update_ratio=1.0)
    got, modes, _ = run_chunked(family, model, odd, units, [2, 3, 2])
    assert base_modes == modes == [True, False, False, True, False, False, True]
    assert torch.equal(got, base)


class _Row:
    """A stream stand-in for driving the policy without a tower."""

    def __init__(self):
        self.id = 0
        self.refresh = RefreshState()


def drive(policy, features):
    """Decide each frame of `features` [F, T, D] one per call; returns reference flags."""
    state, flags = _Row(), []
    for frame in range(features.shape[0]):
        policy.begin_call([state], features[frame : frame + 1])
        decision = policy.decide(0, state, frame, has_reference=frame > 0, num_tokens=features.shape[1])
        policy.end_call()
        flags.append(decision.reference)
    return flags


@pytest.mark.parametrize("pattern", ["still", "every_frame_new", "alternating", "random"])
@pytest.mark.parametrize("bounds", [(1, 3), (2, 4), (3, 3)])
def test_interval_bounds_on_adversarial_sequences(pattern, bounds):
    low, high = bounds
    config = CacherConfig(refresh="adaptive", change_tau=0.9, refresh_threshold=0.2, min_interval=low, max_interval=high)
    generator = torch.Generator().manual_seed(hash(pattern) % 1000)
    base = torch.randn(6, 8, generator=generator)
    frames = []
    for t in range(40):
        new = {"still": False, "every_frame_new": True, "alternating": t % 2 == 1,
               "random": bool(torch.rand(1, generator=generator) < 0.4)}[pattern]
        frames.append(torch.randn(6, 8, generator=generator) if new else (frames[-1] if frames else base))
    policy = AdaptiveRefresh(config, features=lambda hidden, rows: hidden)
    flags = drive(policy, torch.stack(frames))
    refs = [i for i, f in enumerate(flags) if f]
    assert refs[0] == 0
    gaps = [b - a for a, b in zip(refs, refs[1:])]
    assert all(low <= g <= high for g in gaps), (pattern, bounds, refs)
    assert len(flags) - 1 - refs[-1] < high  # the tail never goes past max_interval either
    if pattern == "still":
        assert gaps == [high] * len(gaps)
    if pattern == "every_frame_new":
        assert gaps == [low] * len(gaps)


def test_change_signal_and_adaptive_ratio_by_hand():
    """4 tokens; frame 1 turns 1 token (25 %), frame 2 turns 3 tokens (75 %) against the reference."""
    config = CacherConfig(refresh="adaptive", update_ratio=0.25, change_tau=0.5, refresh_threshold=0.8,
                          min_interval=1, max_interval=10, max_update_ratio=0.5)
    ref = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    one = ref.clone()
    one[0] = torch.tensor([0.0, 0, 1])
    three = ref.clone()
    three[:3] = torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]])
    policy = AdaptiveRefresh(config, features=lambda hidden, rows: hidden)
    state = _Row()
    decisions = []
    for frame, x in enumerate([ref, one, three, three]):
        policy.begin_call([state], x[None])
        decisions.append(policy.decide(0, state, frame, frame > 0, num_tokens=16))
        policy.end_call()
    # centred features: the frame mean is subtracted first, so compare with a hand-centred cosine
    def share(a, b):
        a, b = a - a.mean(0), b - b.mean(0)
        return float((torch.nn.functional.cosine_similarity(a, b, dim=-1) < 0.5).float().mean())

    assert decisions[1].change == share(one, ref) and decisions[2].change == share(three, ref)
    assert not decisions[1].reference and not decisions[2].reference and not decisions[3].reference
    assert decisions[1].tokens == max(4, int(16 * min(0.5, -(-decisions[1].change * 16 // 1) / 16)))
    assert decisions[2].tokens == 8  # change 0.75 -> capped at max_update_ratio 0.5


@pytest.mark.parametrize("name", [n for n in TOWER_NAMES if n != "qwen2_vl"])  # a Qwen2-VL call is one video
def test_two_streams_in_one_call_decide_as_separately(name):
    """Rows of two streams interleaved in every call: each stream's decisions and outputs equal a run
    of that stream alone (the policy's references are per stream)."""
    torch.manual_seed(0)
    family = TOWERS[name]
    model = family.build()
    config = CacherConfig(**{**ADAPTIVE, "change_tau": 0.99, "refresh_threshold": 0.6}, max_update_ratio=0.75)
    a = scene_sequence(family, 6, cuts=(3,), drift=0.1, seed=1)
    b = scene_sequence(family, 6, cuts=(2,), drift=0.1, seed=2)
    alone_a, modes_a, _ = run_chunked(family, model, config, a, [1] * 6)
    alone_b, modes_b, _ = run_chunked(family, model, config, b, [1] * 6)
    handle = attach_cacher(model, config)
    try:
        sa, sb = handle.new_stream(), handle.new_stream()
        outs, modes = [], []
        with torch.no_grad():
            for i in range(0, 6, 2):  # rows: a_i, b_i, a_i+1, b_i+1
                batch = torch.stack([a[i], b[i], a[i + 1], b[i + 1]])
                with handle.use([sa, sb, sa, sb]):
                    outs.append(family.encode(model, batch))
                modes += [row in handle._plan.reference_rows for row in range(4)]
    finally:
        handle.detach()
    got = torch.cat(outs)
    assert modes[0::2] == modes_a and modes[1::2] == modes_b  # rows alternate a, b
    assert any(modes_a[1:]) and not all(modes_a)
    torch.testing.assert_close(got[0::2], alone_a, **EXACT)
    torch.testing.assert_close(got[1::2], alone_b, **EXACT)
