"""random_drop, VisionZip and VidCom² on tiny tensors: exact budgets, hand-computed cases, causality,
one clear error for impossible budgets."""

import pytest
import torch

from stc.compression import CompressionSpec, TokenSide


def build(name, **settings):
    return CompressionSpec.from_mapping({name: settings}).build()[0]


# ---- budgets ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["random_drop", "visionzip", "vidcom2", "tome"])
def test_impossible_budgets_fail_with_one_line_naming_the_knob(name):
    with pytest.raises(ValueError, match=rf"compression\.{name}\.tokens_per_frame=0"):
        build(name, tokens_per_frame=0)
    with pytest.raises(ValueError, match=rf"compression\.{name}\.tokens_per_frame=-3"):
        build(name, tokens_per_frame=-3)
    method = build(name, tokens_per_frame=197)
    with pytest.raises(ValueError, match=rf"compression\.{name}\.tokens_per_frame=197 exceeds the 196 tokens"):
        method.tokens_out(196)
    assert build(name, tokens_per_frame=49).tokens_out(196) == 49


# ---- random drop -----------------------------------------------------------------------------------
def test_random_drop_keeps_k_sorted_distinct_tokens_and_is_reproducible_per_stream():
    tokens = torch.randn(5, 23, 4)
    method = build("random_drop", tokens_per_frame=7, seed=3)
    kept, indices = method.compress(tokens, TokenSide())
    assert kept.shape == (5, 7, 4) and indices.shape == (5, 7)
    for f in range(5):
        row = indices[f].tolist()
        assert row == sorted(set(row)) and all(0 <= i < 23 for i in row)
        torch.testing.assert_close(kept[f], tokens[f, indices[f]])
    assert len({tuple(r) for r in indices.tolist()}) > 1  # frames draw independently
    second, _ = method.compress(tokens, TokenSide())
    method.reset()
    again, again_idx = method.compress(tokens, TokenSide())
    torch.testing.assert_close(again_idx, indices)  # reset re-seeds the stream
    assert not torch.equal(second, kept)
    assert method.stats() == {"frames": 5, "tokens_in": 115, "tokens_kept": 35}


# ---- VisionZip -------------------------------------------------------------------------------------
def test_visionzip_hand_computed_dominant_and_contextual_tokens():
    x = torch.arange(12, dtype=torch.float32).view(1, 6, 2)  # token i = [2i, 2i+1]
    attention = torch.tensor([[0.1, 0.9, 0.2, 0.8, 0.05, 0.3]])
    keys = torch.tensor([[[1.0, 0.0], [5, 5], [0.9, 0.1], [5, 5], [0.0, 1.0], [0.2, 1.0]]])
    method = build("visionzip", tokens_per_frame=4, contextual_ratio=0.5)  # 2 dominant + 2 contextual
    kept, indices = method.compress(x, TokenSide(attention=attention, keys=keys))
    assert indices is None
    # dominant: tokens 1, 3 (raster order); rest [0, 2, 4, 5], step 4 // 2 = 2 -> targets tokens 0 and 4;
    # token 2 (key ~[1, 0]) joins target 0, token 5 (key ~[0.2, 1]) joins target 4; target + mean(assignees)
    expected = torch.stack([x[0, 1], x[0, 3], x[0, 0] + x[0, 2], x[0, 4] + x[0, 5]])
    torch.testing.assert_close(kept[0], expected)
    assert method.stats()["tokens_merged"] == 2


def test_visionzip_released_split_and_dominant_only_mode():
    from stc.baselines.visionzip import VisionZipConfig

    assert VisionZipConfig(tokens_per_frame=64).split() == (54, 10)   # released 54 + 10
    assert VisionZipConfig(tokens_per_frame=49).split() == (41, 8)
    assert VisionZipConfig(tokens_per_frame=1).split() == (1, 0)
    x = torch.randn(2, 9, 3)
    attention = torch.rand(2, 9)
    method = build("visionzip", tokens_per_frame=3, contextual_ratio=0.0)
    kept, indices = method.compress(x, TokenSide(attention=attention, keys=torch.randn(2, 9, 2)))
    expected = torch.topk(attention, 3, dim=1).indices.sort(dim=1).values
    torch.testing.assert_close(indices, expected)
    torch.testing.assert_close(kept, torch.gather(x, 1, expected[..., None].expand(-1, -1, 3)))


def test_visionzip_without_side_information_names_the_missing_field():
    method = build("visionzip", tokens_per_frame=3)
    with pytest.raises(ValueError, match="TokenSide.attention"):
        method.compress(torch.randn(1, 9, 3), TokenSide())


# ---- VidCom² ---------------------------------------------------------------------------------------
def test_vidcom2_frame_budgets_from_planted_uniqueness_by_hand():
    from stc.baselines.vidcom2 import frame_budgets

    # p ~ one-hot on the unique frame: scale = R (1 + p - mean p); N = 8, k = 4 (R = 0.5):
    # 2 frames -> 0.5 * 1.5 * 8 = 6 and 0.5 * 0.5 * 8 = 2
    assert frame_budgets(torch.tensor([0.0, 1.0]), tokens=8, budget=4, temperature=0.01).tolist() == [2, 6]
    # 3 frames, N = 6, k = 3: unique 0.5 * 5/3 * 6 = 5, others 0.5 * 2/3 * 6 = 2
    assert frame_budgets(torch.tensor([1.0, 0.0, 0.0]), tokens=6, budget=3, temperature=0.01).tolist() == [5, 2, 2]
    # clamped at N: 2 frames, N = 4, k = 3: unique wants 4.5 -> 4, the other gets the rest
    assert frame_budgets(torch.tensor([0.0, 1.0]), tokens=4, budget=3, temperature=0.01).tolist() == [2, 4]
    # large temperature: uniform budgets
    assert frame_budgets(torch.tensor([0.0, 1.0, 0.5]), tokens=10, budget=3, temperature=1e6).tolist() == [3, 3, 3]


def test_vidcom2_budgets_always_sum_to_the_chunk_total():
    from stc.baselines.vidcom2 import frame_budgets

    generator = torch.Generator().manual_seed(0)
    for trial in range(50):
        frames = 1 + trial % 7
        tokens = 3 + trial % 11
        budget = 1 + trial % tokens
        uniqueness = torch.randn(frames, generator=generator)
        k = frame_budgets(uniqueness, tokens, budget, temperature=0.1 * (1 + trial % 3))
        assert int(k.sum()) == frames * budget and int(k.min()) >= 1 and int(k.max()) <= tokens


def test_vidcom2_unique_frame_gets_more_tokens_and_outliers_are_kept():
    generator = torch.Generator().manual_seed(1)
    common = torch.randn(6, 8, generator=generator)
    frames = torch.stack([common, common + 0.01 * torch.randn(6, 8, generator=generator),
                          torch.randn(6, 8, generator=generator) * 3])
    method = build("vidcom2", tokens_per_frame=3)
    kept, indices = method.compress(frames, TokenSide())
    assert indices is None and kept.shape == (3, 3, 8)
    budgets = method.stats()["last_frame_budgets"]
    assert budgets[2] == max(budgets) and sum(budgets) == 9 and budgets[2] > 3
    # packed temporal order: the first budgets[0] rows of the chunk are frame 0's tokens
    flat = kept.reshape(-1, 8)
    for row in flat[:budgets[0]]:
        assert any(torch.equal(row, t) for t in frames[0])


def test_vidcom2_keeps_the_tokens_least_like_both_centres():
    from stc.baselines.vidcom2 import gaussian_similarity

    generator = torch.Generator().manual_seed(2)
    frame = torch.randn(1, 10, 6, generator=generator)
    method = build("vidcom2", tokens_per_frame=4, channel_ratio=1.0)
    _, indices = method.compress(frame, TokenSide())
    x = torch.nn.functional.normalize(frame[0], dim=-1)
    score = 2 * gaussian_similarity(x, x.mean(0))  # one frame: video centre == frame centre
    assert indices[0].tolist() == sorted(torch.topk(score, 4, largest=False).indices.tolist())


def test_vidcom2_channel_selection_keeps_lowest_or_highest_variance():
    method = build("vidcom2", tokens_per_frame=2)
    flat = torch.cat([torch.randn(20, 2) * 10, torch.randn(20, 2) * 0.1], dim=1)  # channels 2, 3 vary least
    assert sorted(method._channels(flat).tolist()) == [2, 3]
    quirk = build("vidcom2", tokens_per_frame=2, low_variance_channels=False)
    assert sorted(quirk._channels(flat).tolist()) == [0, 1]


def test_vidcom2_memory_mode_is_causal_and_resets():
    generator = torch.Generator().manual_seed(3)
    stream = torch.randn(6, 1, 12, 8, generator=generator)
    changed = stream.clone()
    changed[4:] = torch.randn(2, 1, 12, 8, generator=generator)

    def run(frames):
        method = build("vidcom2", tokens_per_frame=5, anchor="memory", frame_budgets=False)
        return [method.compress(frame, TokenSide())[1] for frame in frames], method

    first, method = run(stream)
    second, _ = run(changed)
    for t in range(4):
        torch.testing.assert_close(first[t], second[t])
    assert any(not torch.equal(first[t], second[t]) for t in (4, 5))
    method.reset()
    assert method.memory_calls == 0 and method.channels is None
    torch.testing.assert_close(method.compress(stream[0], TokenSide())[1], first[0])


def test_random_drop_and_visionzip_are_per_frame_causal():
    generator = torch.Generator().manual_seed(4)
    tokens = torch.randn(4, 10, 3, generator=generator)
    attention, keys = torch.rand(4, 10, generator=generator), torch.randn(4, 10, 2, generator=generator)
    for name in ("random_drop", "visionzip"):
        outputs = []
        for variant in range(2):
            method = build(name, tokens_per_frame=4)
            frames = tokens.clone()
            if variant:
                frames[3] = torch.randn(10, 3, generator=generator)
            outputs.append([method.compress(frames[t:t + 1], TokenSide(attention=attention[t:t + 1],
                                                                       keys=keys[t:t + 1]))[0] for t in range(4)])
        for t in range(3):
            torch.testing.assert_close(outputs[0][t], outputs[1][t])
