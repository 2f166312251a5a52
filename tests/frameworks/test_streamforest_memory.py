"""The event memory forest against hand-computed cases: ToMe merge sizes and weights, the event split
position, the consolidation choice, and the token bound over random streams."""

import math

import pytest
import torch

from frameworks.streamforest.memory import Event, EventMemoryForest, MemorySettings
from frameworks.streamforest.tome import merge_schedule, merge_tokens, pair_similarity


def test_merge_schedule_halves_until_the_target():
    assert merge_schedule(729, 128) == [364, 182, 55]   # 729 -> 365 -> 183 -> 128
    assert merge_schedule(8 * 128, 8 * 64) == [512]       # an 8-frame event: one round
    assert merge_schedule(729, 729) == []
    with pytest.raises(ValueError):
        merge_schedule(10, 11)


def test_tome_merges_the_best_matched_token_into_its_partner_and_keeps_the_released_order():
    # positions 0,2 are set A, 1,3 set B; a0 ~ b0 (cos 0.995), a1 ~ b0 (cos 0.0995), nothing ~ b1
    x = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [-1.0, 0.0]])[None]
    one = merge_tokens(x, 3, heads=1)[0]
    torch.testing.assert_close(one, torch.tensor([[0.0, 1.0], [1.0, 0.05], [-1.0, 0.0]]))  # [unmerged a1, b0+a0, b1]
    two = merge_tokens(x, 2, heads=1)[0]   # both A tokens go to b0: mean of three
    torch.testing.assert_close(two, torch.tensor([[2 / 3, 1.1 / 3], [-1.0, 0.0]]))
    # 4 -> 1 is two rounds (2 merges, then 1); the second round weighs b0' by the 3 tokens it holds
    last = merge_tokens(x, 1, heads=1)[0]
    torch.testing.assert_close(last, torch.tensor([[0.25, 0.275]]))


def test_metric_averages_the_head_channel_groups():
    # 4 channels, 2 heads: metric = (x[:2] + x[2:]) / 2. a0=[1,0,1,0] and b0=[0,1,2,-1] share the metric
    # [1,0] (cos 1) although their raw cosine is only 0.58; a1 ~ b1 has metric cos 0.9988 (raw 0.98).
    # Head-averaged matching merges a0 into b0; matching on raw channels would have merged a1 into b1.
    a0, b0, a1, b1 = [1.0, 0, 1, 0], [0.0, 1, 2, -1], [0.0, 1, 0.2, 1], [0.0, 1.2, 0.3, 0.8]
    out = merge_tokens(torch.tensor([a0, b0, a1, b1])[None], 3, heads=2)[0]
    torch.testing.assert_close(out, torch.tensor([a1, [0.5, 0.5, 1.5, -0.5], b1]))


def test_pair_similarity_is_the_mean_of_the_best_matches():
    first = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])    # 1 frame, 2 tokens
    second = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    # joined = [e1, e1, e2, e1]: A = {e1, e2}, B = {e1, e1}; best scores 1 and 0; r = 4 - 2 = 2 -> mean 0.5
    assert pair_similarity(first, second, 2, heads=1) == pytest.approx(0.5)


def _frames_with_boundary(count, boundary, tokens=8, channels=4, seed=0):
    """Frames that drift slowly, with a jump (a new random frame) between frames boundary-1 and boundary."""
    generator = torch.Generator().manual_seed(seed)
    frames = [torch.randn(tokens, channels, generator=generator)]
    for index in range(1, count):
        if index == boundary:
            frames.append(torch.randn(tokens, channels, generator=generator))
        else:
            frames.append(frames[-1] + 0.05 * torch.randn(tokens, channels, generator=generator))
    return frames


SMALL = MemorySettings(now_window=1, now_tokens=8, short_window=2, short_tokens=4, split_window=3, long_tokens=2, quota=100)


def test_event_split_cuts_after_the_least_similar_of_the_first_transitions():
    memory = EventMemoryForest(SMALL, heads=1)
    for frame in _frames_with_boundary(6, boundary=2):
        memory.insert(frame)
        memory.maintain()
    # split when 2 + 3 frames are short-term (after frame 5 arrives): transitions (0,1),(1,2),(2,3) -> cut 2
    assert len(memory.events) == 1
    event = memory.events[0]
    assert event.frames == 2 and event.tokens.shape == (2, 2, 4)
    assert event.time == pytest.approx(0.5) and event.merges == 1
    assert len(memory.short) == 3 and len(memory.now) == 1 and memory.frames_seen == 6
    assert [t.shape[0] for t in memory.short] == [4, 4, 4]
    assert len(memory.transitions) == 3   # (2,3), (3,4), (4,5)
    assert memory.tokens().shape == (2 * 2 + 3 * 4 + 8, 4)


@pytest.mark.parametrize("boundary,cut", [(1, 1), (3, 3)])
def test_split_position_follows_the_jump(boundary, cut):
    memory = EventMemoryForest(SMALL, heads=1)
    for frame in _frames_with_boundary(6, boundary=boundary, seed=boundary):
        memory.insert(frame)
        memory.maintain()
    assert memory.events[0].frames == cut


def _memory_with_events(similarity, merges, times, elapsed, quota=4):
    settings = MemorySettings(now_window=1, now_tokens=4, short_window=1, short_tokens=4, split_window=2,
                              long_tokens=2, quota=quota)
    memory = EventMemoryForest(settings, heads=1)
    generator = torch.Generator().manual_seed(0)
    memory.events = [Event(torch.randn(1, 2, 4, generator=generator), t, m) for t, m in zip(times, merges)]
    memory.event_similarity = list(similarity)
    memory.frames_in_events = elapsed + 1
    return memory


def test_consolidation_merges_the_lowest_penalty_pair():
    # pair 0: 0.4*0.1 + 0.2*(2.75/9) + 0.4*1 = 0.5011; pair 1: 0.4*0.8 + 0.2*(7/9) + 0.4*1 = 0.8756
    memory = _memory_with_events([0.9, 0.2], [1, 1, 1], [0.5, 5.0, 9.0], elapsed=9)
    assert memory.penalties() == pytest.approx([0.50111, 0.87556], abs=1e-4)
    last = memory.events[2].tokens.clone()
    memory._consolidate()
    assert len(memory.events) == 2 and memory.long_tokens() == 4
    assert memory.events[0].merges == 2 and memory.events[0].time == pytest.approx(2.75)
    assert torch.equal(memory.events[1].tokens, last)
    assert len(memory.event_similarity) == 1


def test_merge_count_term_can_outweigh_similarity():
    # counts (3+3)/2=3 and (3+1)/2=2, max 3: pair 0 = 0.16 + 0.0611 + 0.4 = 0.6211; pair 1 = 0.16 + 0.1556 + 0.2667 = 0.5822
    memory = _memory_with_events([0.6, 0.6], [3, 3, 1], [0.5, 5.0, 9.0], elapsed=9)
    assert memory.penalties() == pytest.approx([0.62111, 0.58222], abs=1e-4)
    first = memory.events[0].tokens.clone()
    memory._consolidate()
    assert torch.equal(memory.events[0].tokens, first) and memory.events[1].merges == 4
    assert memory.events[1].time == pytest.approx(7.0)


def _random_stream(count, settings, seed, channels=8):
    """Frames whose frame-to-frame similarity is random: each frame keeps a random share of the previous."""
    generator = torch.Generator().manual_seed(seed)
    frame = torch.randn(settings.now_tokens, channels, generator=generator)
    for _ in range(count):
        yield frame
        keep = float(torch.rand((), generator=generator))
        frame = keep * frame + (1 - keep) * torch.randn(settings.now_tokens, channels, generator=generator)


TINYISH = MemorySettings(now_window=1, now_tokens=12, short_window=3, short_tokens=6, split_window=4, long_tokens=3, quota=30)


@pytest.mark.parametrize("seed", range(6))
def test_token_quota_and_bound_hold_at_every_stream_length(seed):
    memory = EventMemoryForest(TINYISH, heads=2)
    bound = TINYISH.token_bound()
    assert bound == 30 + (3 + 4 - 1) * 6 + 12
    worst = 0
    for count, frame in enumerate(_random_stream(120, TINYISH, seed), start=1):
        memory.insert(frame)
        memory.maintain()
        assert memory.long_tokens() <= TINYISH.quota
        assert all(event.frames <= TINYISH.split_window for event in memory.events)
        assert len(memory.short) <= TINYISH.short_window + TINYISH.split_window - 1
        assert memory.frames_seen == count
        worst = max(worst, memory.tokens().shape[0])
        assert memory.tokens().shape[0] <= bound
    assert memory.consolidations > 0 and worst > bound - 3 * 6 - 3 * 3  # the bound is nearly reached


def test_released_schedule_equals_streaming_schedule_until_the_quota_is_first_exceeded():
    settings = MemorySettings(now_window=1, now_tokens=12, short_window=3, short_tokens=6, split_window=4,
                              long_tokens=3, quota=1000)
    frames = list(_random_stream(40, settings, seed=3))
    streaming, released = EventMemoryForest(settings, heads=2), EventMemoryForest(settings, heads=2)
    for frame in frames:
        streaming.insert(frame)
        streaming.maintain()
        released.insert(frame)
    released.maintain()
    assert streaming.consolidations == 0 and len(streaming.events) > 3
    torch.testing.assert_close(streaming.tokens(), released.tokens())


def test_bad_memory_settings_name_the_knob():
    with pytest.raises(ValueError, match="quota"):
        MemorySettings(quota=100)
    with pytest.raises(ValueError, match="short_tokens"):
        MemorySettings(short_tokens=0)
    with pytest.raises(ValueError, match="quoat"):
        MemorySettings.from_mapping({"quoat": 1})
    memory = EventMemoryForest(SMALL, heads=1)
    memory.insert(torch.randn(8, 4))
    with pytest.raises(ValueError, match="token count"):
        memory.insert(torch.randn(6, 4))
    with pytest.raises(RuntimeError, match="empty"):
        EventMemoryForest(SMALL, heads=1).tokens()
