"""VisionZip and VidCom² select for all frames of a call at once (stc/baselines/batched.py). The plain
path is the previous per-frame code, transcribed below as the reference: outputs must be IDENTICAL
(torch.equal: same kept tokens, same order, same indices, same budgets) at frame counts, token counts
and budgets aligned to nothing, in float64 and float32; VisionZip's merged (contextual) tokens are
sums whose float order a batched matmul may change, so they are identical for integer-valued tokens
and equal to the last bit otherwise. Equal scores at the cut, which torch.topk
left unspecified, now keep the lowest index: tested on constant frames by hand and against a pure
Python selection."""

import pytest
import torch
import torch.nn.functional as F

from stc.baselines import batched
from stc.baselines.vidcom2 import frame_budgets
from stc.compression import CompressionSpec, TokenSide


def build(name, **settings):
    return CompressionSpec.from_mapping({name: settings}).build()[0]


# ---- the previous per-frame code (reference only) ---------------------------------------------------
def topk_select(scores, count, largest):
    return torch.topk(scores, count, largest=largest).indices.sort().values


def lowest_index_select(scores, count, largest):
    """The explicit tie rule in plain Python: best scores first, equal scores by lowest index."""
    values = scores.tolist()
    order = sorted(range(len(values)), key=lambda i: (-values[i] if largest else values[i], i))
    return torch.tensor(sorted(order[:count]), dtype=torch.long)


def old_visionzip_frame(tokens, attention, keys, dominant, contextual, select=topk_select):
    count = tokens.shape[0]
    top = select(attention.float(), dominant, True)
    if contextual == 0:
        return tokens[top], top
    rest_mask = torch.ones(count, dtype=torch.bool)
    rest_mask[top] = False
    rest = rest_mask.nonzero().squeeze(1)
    metric = F.normalize(keys[rest].float(), dim=-1)
    step = max(1, rest.numel() // contextual)
    targets = torch.arange(0, rest.numel(), step)[:contextual]
    is_target = torch.zeros(rest.numel(), dtype=torch.bool)
    is_target[targets] = True
    sources = (~is_target).nonzero().squeeze(1)
    assign = (metric[sources] @ metric[targets].T).argmax(dim=1)
    one_hot = F.one_hot(assign, targets.numel()).to(tokens.dtype)
    counts = one_hot.sum(0).clamp(min=1)[:, None]
    merged = (one_hot.T @ tokens[rest[sources]]) / counts
    return torch.cat([tokens[top], tokens[rest[targets]] + merged]), top


def old_visionzip(tokens, attention, keys, dominant, contextual, select=topk_select):
    outs = [old_visionzip_frame(tokens[f], attention[f], keys[f], dominant, contextual, select)
            for f in range(tokens.shape[0])]
    return torch.stack([o for o, _ in outs]), torch.stack([t for _, t in outs])


def old_frame_budgets(uniqueness, tokens, budget, temperature):
    frames = uniqueness.shape[0]
    p = torch.softmax((uniqueness - uniqueness.max()) / temperature, dim=0)
    scale = (budget / tokens) * (1 + p - p.mean())
    wanted = (scale.clamp(max=1.0) * tokens).double()
    k = wanted.floor().clamp(1, tokens).long()
    missing = frames * budget - int(k.sum())
    fraction = (wanted - wanted.floor()).tolist()
    order = sorted(range(frames), key=lambda f: -fraction[f]) if missing > 0 else \
        sorted(range(frames), key=lambda f: fraction[f])
    while missing != 0:
        for f in order:
            if missing > 0 and k[f] < tokens:
                k[f] += 1
                missing -= 1
            elif missing < 0 and k[f] > 1:
                k[f] -= 1
                missing += 1
            if missing == 0:
                break
    return k


def old_vidcom2(method, tokens, select=topk_select):
    """The previous VidCom2Method.compress, on `method`'s (unchanged) scores."""
    frames, count, dim = tokens.shape
    k = method.config.tokens_per_frame
    scores, uniqueness = method.scores(tokens)
    adaptive = method.config.frame_budgets and method.config.anchor == "video" and frames > 1
    budgets = old_frame_budgets(uniqueness, count, k, method.config.temperature) if adaptive else \
        torch.full((frames,), k, dtype=torch.long)
    picked = [select(scores[f], int(budgets[f]), False) for f in range(frames)]
    kept = torch.cat([tokens[f, picked[f]] for f in range(frames)]).view(frames, k, dim)
    return kept, (None if adaptive else torch.stack(picked)), budgets.tolist()


def assert_identical(new, old):
    if old is None:
        assert new is None
    else:
        assert new.dtype == old.dtype and new.shape == old.shape and torch.equal(new, old)


# ---- VisionZip ---------------------------------------------------------------------------------------
CASES = [(1, 49, 5), (3, 50, 13), (7, 49, 20), (13, 50, 7), (3, 97, 37), (2, 729, 182), (13, 23, 23)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("frames, count, k", CASES)
@pytest.mark.parametrize("ratio", [0.0, 10 / 64, 0.45])
@pytest.mark.parametrize("integer_tokens", [True, False])
def test_visionzip_batched_equals_the_per_frame_code(dtype, frames, count, k, ratio, integer_tokens):
    """Dominant tokens and indices: identical. Contextual tokens: a batched matmul sums a target's
    assignees in another order than the per-frame matmul did, so float tokens may differ in the last
    bit; with integer-valued tokens every sum is exact and the outputs must be identical, which also
    pins the assignment of every merged token to its target."""
    generator = torch.Generator().manual_seed(frames * 1000 + count + k)
    tokens = torch.randn(frames, count, 6, generator=generator, dtype=dtype)
    if integer_tokens:
        tokens = (tokens * 100).round()
    # distinct attention per frame (a random permutation): no ties, so torch.topk's set is defined
    attention = torch.stack([torch.randperm(count, generator=generator) for _ in range(frames)]).to(dtype)
    keys = torch.randn(frames, count, 5, generator=generator, dtype=dtype)
    method = build("visionzip", tokens_per_frame=k, contextual_ratio=ratio)
    dominant, contextual = method.config.split()
    kept, indices = method.compress(tokens, TokenSide(attention=attention, keys=keys))
    old_kept, old_top = old_visionzip(tokens, attention, keys, dominant, contextual)
    assert_identical(indices, old_top if contextual == 0 else None)
    assert_identical(kept[:, :dominant], old_kept[:, :dominant])
    if integer_tokens:
        assert_identical(kept, old_kept)
    else:  # last-bit differences only (a different assignment would differ by O(1))
        eps = torch.finfo(dtype).eps
        torch.testing.assert_close(kept, old_kept, rtol=4 * eps, atol=4 * eps)
    assert method.stats()["tokens_merged"] == frames * (count - k)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_visionzip_constant_frames_keep_the_lowest_indices_by_hand(dtype):
    frames, count, dim = 3, 11, 4
    level = torch.tensor([1.0, -2.0, 0.5], dtype=dtype)
    tokens = level[:, None, None].expand(frames, count, dim).clone()
    side = TokenSide(attention=torch.ones(frames, count, dtype=dtype), keys=torch.ones(frames, count, 3, dtype=dtype))
    dominant_only, indices = build("visionzip", tokens_per_frame=4, contextual_ratio=0.0).compress(tokens, side)
    assert indices.tolist() == [[0, 1, 2, 3]] * frames  # all attention equal: the 4 lowest indices
    assert torch.equal(dominant_only, tokens[:, :4])
    kept, _ = build("visionzip", tokens_per_frame=5, contextual_ratio=0.4).compress(tokens, side)  # 3 + 2
    # rest = tokens 3..10 (8), step 4: targets are tokens 3 and 7; all keys equal, so every source joins
    # the first target: contextual 0 = c + mean(c, ...) = 2c, contextual 1 = c + 0 (no assignees)
    expected = torch.stack([level] * 3 + [2 * level, level], dim=1)[..., None].expand(frames, 5, dim)
    assert torch.equal(kept, expected)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("frames, count, k", [(1, 49, 7), (7, 50, 13), (13, 29, 11)])
def test_visionzip_ties_at_the_cut_follow_the_lowest_index_rule(dtype, frames, count, k):
    generator = torch.Generator().manual_seed(count + k)
    tokens = (torch.randn(frames, count, 6, generator=generator, dtype=dtype) * 100).round()  # exact sums
    attention = torch.randint(0, 4, (frames, count), generator=generator).to(dtype)  # few levels: many ties
    # distinct random keys: targets whose keys are exact copies tie only up to the matmul's rounding,
    # which depends on the column a target lands in (before and now), so that case has no defined rule
    keys = torch.randn(frames, count, 5, generator=generator, dtype=dtype)
    for ratio in (0.0, 10 / 64, 0.45):
        method = build("visionzip", tokens_per_frame=k, contextual_ratio=ratio)
        dominant, contextual = method.config.split()
        kept, _ = method.compress(tokens, TokenSide(attention=attention, keys=keys))
        old_kept, _ = old_visionzip(tokens, attention, keys, dominant, contextual, select=lowest_index_select)
        assert_identical(kept, old_kept)


# ---- VidCom² -----------------------------------------------------------------------------------------
def planted_frames(frames, count, dim, dtype, generator):
    """Frames around a common pattern with growing noise, so uniqueness (and the budgets) differ."""
    common = torch.randn(count, dim, generator=generator, dtype=dtype)
    noise = torch.randn(frames, count, dim, generator=generator, dtype=dtype)
    return common + noise * torch.linspace(0.05, 2.0, frames, dtype=dtype)[:, None, None]


VIDCOM_CASES = [(1, 49, 5), (3, 50, 13), (7, 49, 20), (13, 50, 7), (13, 49, 1), (3, 97, 96), (2, 729, 182)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("frames, count, k", VIDCOM_CASES)
@pytest.mark.parametrize("settings", [{"temperature": 0.01}, {"temperature": 0.003}, {"anchor": "memory", "frame_budgets": False},
                                      {"frame_budgets": False, "low_variance_channels": False}])
def test_vidcom2_batched_equals_the_per_frame_code(dtype, frames, count, k, settings):
    generator = torch.Generator().manual_seed(frames * 1000 + count + k)
    method, reference = build("vidcom2", tokens_per_frame=k, **settings), build("vidcom2", tokens_per_frame=k, **settings)
    for call in range(2):  # the memory anchor carries state from the first call into the second
        tokens = planted_frames(frames, count, 8, dtype, generator)
        kept, indices = method.compress(tokens, TokenSide())
        old_kept, old_indices, old_budgets = old_vidcom2(reference, tokens)
        assert_identical(kept, old_kept)
        assert_identical(indices, old_indices)
        assert method.stats()["last_frame_budgets"] == old_budgets


def test_vidcom2_cases_exercise_uneven_frame_budgets():
    """The equality test above is only meaningful if frames really get different budgets."""
    generator = torch.Generator().manual_seed(13 * 1000 + 50 + 7)
    method = build("vidcom2", tokens_per_frame=7, temperature=0.01)
    method.compress(planted_frames(13, 50, 8, torch.float32, generator), TokenSide())
    budgets = method.stats()["last_frame_budgets"]
    assert sum(budgets) == 13 * 7 and len(set(budgets)) >= 3


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_vidcom2_constant_frames_keep_the_lowest_indices_by_hand(dtype):
    frames, count, dim = 3, 10, 4
    level = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 2.0]], dtype=dtype)
    tokens = level[:, None, :].expand(frames, count, dim).clone()
    fixed = build("vidcom2", tokens_per_frame=3, anchor="memory", frame_budgets=False, channel_ratio=1.0)
    kept, indices = fixed.compress(tokens, TokenSide())
    assert indices.tolist() == [[0, 1, 2]] * frames and torch.equal(kept, tokens[:, :3])
    adaptive = build("vidcom2", tokens_per_frame=3, channel_ratio=1.0, temperature=0.5)
    kept, indices = adaptive.compress(tokens, TokenSide())
    budgets = adaptive.stats()["last_frame_budgets"]
    assert indices is None and sum(budgets) == 9
    # packed in temporal order: frame f contributes its budgets[f] lowest indices (all are equal copies)
    expected = torch.cat([tokens[f, :budgets[f]] for f in range(frames)]).view(frames, 3, dim)
    assert torch.equal(kept, expected)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("frames, count, k", [(3, 49, 9), (7, 50, 13), (13, 29, 4)])
def test_vidcom2_ties_at_the_cut_follow_the_lowest_index_rule(dtype, frames, count, k):
    generator = torch.Generator().manual_seed(count + k)
    tokens = planted_frames(frames, count, 8, dtype, generator)
    tokens[:, 1::2] = tokens[:, :1]  # half of every frame copies its first token: equal scores
    for settings in ({"temperature": 0.3}, {"frame_budgets": False}):
        method, reference = build("vidcom2", tokens_per_frame=k, **settings), build("vidcom2", tokens_per_frame=k, **settings)
        kept, indices = method.compress(tokens, TokenSide())
        old_kept, old_indices, old_budgets = old_vidcom2(reference, tokens, select=lowest_index_select)
        assert_identical(kept, old_kept)
        assert_identical(indices, old_indices)
        assert method.stats()["last_frame_budgets"] == old_budgets


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_frame_budgets_equal_the_per_frame_tensor_code(dtype):
    generator = torch.Generator().manual_seed(5)
    checked = 0
    for trial in range(300):
        frames = 1 + trial % 13
        tokens = 3 + (trial * 7) % 60
        budget = 1 + (trial * 5) % tokens
        uniqueness = torch.randn(frames, generator=generator, dtype=dtype)
        if trial % 4 == 0:
            uniqueness = uniqueness.round()  # equal uniqueness: equal fractions, ties in the remainder order
        temperature = (0.01, 0.1, 0.5, 3.0)[trial % 4]
        new = frame_budgets(uniqueness, tokens, budget, temperature)
        old = old_frame_budgets(uniqueness, tokens, budget, temperature)
        assert new.dtype == torch.long and new.tolist() == old.tolist()
        checked += len(set(old.tolist())) > 1
    assert checked > 100  # most trials have uneven budgets


# ---- helpers -----------------------------------------------------------------------------------------
def test_packed_positions_and_ranked_mask_by_hand():
    scores = torch.tensor([[3.0, 1.0, 1.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    mask = batched.ranked_mask(scores, torch.tensor([2, 3]))
    assert mask.tolist() == [[False, True, False, True], [True, True, True, False]]
    assert batched.packed_positions(mask, 5).tolist() == [1, 3, 4, 5, 6]
    assert batched.complement_indices(torch.tensor([[3, 0], [1, 2]]), 5).tolist() == [[1, 2, 4], [0, 3, 4]]
    assert batched.top_indices(torch.tensor([[1.0, 5.0, 5.0, 5.0]]), 2).tolist() == [[1, 2]]


@pytest.mark.parametrize("count", [1, 7, 20, 37])
def test_split_indices_is_top_indices_and_its_complement(count):
    """One ranking sort gives both halves: the top `count` (ties: lowest index) and every other index in
    raster order, equal to `complement_indices` of the top; integer scores make ties at the cut."""
    scores = torch.randint(0, 4, (5, 37), generator=torch.Generator().manual_seed(count)).float()
    for largest in (True, False):
        top, rest = batched.split_indices(scores, count, largest)
        assert torch.equal(top, batched.top_indices(scores, count, largest))
        assert torch.equal(rest, batched.complement_indices(top, 37))
