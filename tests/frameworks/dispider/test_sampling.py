"""Dispider's clip rule (count from duration, midpoint frames, square squash) on hand-computed cases."""

import pytest
import torch

from frameworks.dispider.sampling import (clip_count, midpoint_indices, released_clips, squash_to_square,
                                          stream_duration, thin_clips)


@pytest.mark.parametrize("duration,clips", [
    (1.0, 1),        # round(1/16) = 0 -> clamped to 1
    (8.0, 1),        # 0.5 rounds to even 0 -> 1
    (16.0, 1),
    (24.0, 2),       # 1.5 rounds to even 2
    (40.0, 2),       # 2.5 rounds to even 2
    (1600.0, 100),
    (1608.0, 100),   # 100.5 -> 100 (and the cap)
    (3 * 3600.0, 100),
])
def test_clip_count_edges(duration, clips):
    assert clip_count(duration) == clips


def test_clip_count_refuses_negative_duration():
    with pytest.raises(ValueError, match="duration"):
        clip_count(-1.0)


def test_midpoint_indices_hand_computed():
    # segment = 9/4 = 2.25: ends 0, 2, 4 (4.5 -> 4), 7, 9 -> midpoints 1, 3, 5, 8
    assert midpoint_indices(10, 4) == [1, 3, 5, 8]
    # more frames asked than exist: segment 2/8 = 0.25, ends 0,0,0,1,1,1,2,2,2 -> repeats, never out of range
    assert midpoint_indices(3, 8) == [0, 0, 0, 1, 1, 1, 2, 2]
    # released quirk (segment = (total - 1) / desired): 16 of 16 frames repeats frame 8 and never picks frame 15
    assert midpoint_indices(16, 16) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 10, 11, 12, 13, 14]
    assert midpoint_indices(1, 16) == [0] * 16


def test_thin_clips_keeps_distinct_midpoint_picks_in_time_order():
    clips = ["c%d" % i for i in range(10)]
    assert thin_clips(clips, 4) == ["c1", "c3", "c5", "c8"]          # midpoint_indices(10, 4) above
    assert thin_clips(clips[:3], 3) == clips[:3] and thin_clips(clips[:2], 5) == clips[:2]
    # 16 of 17: segment 16/16 = 1.0, ends 0..16, midpoints 0..15 (the last clip is the one dropped)
    assert thin_clips(list(range(17)), 16) == list(range(16))


def test_released_clips_on_a_one_fps_stream():
    one_second = released_clips([0.0])
    assert one_second == [[0] * 16]
    sixteen = released_clips([float(t) for t in range(16)])
    assert len(sixteen) == 1 and len(sixteen[0]) == 16 and sixteen[0] == sorted(sixteen[0])
    long = released_clips([float(t) for t in range(1600)])
    assert len(long) == 100 and all(len(c) == 16 for c in long)
    flat = [i for c in long for i in c]
    assert flat == sorted(flat) and len(set(flat)) == 1599 and 1599 not in flat  # ~1 fps (the last frame never)
    three_hours = released_clips([float(t) for t in range(10800)])
    flat = [i for c in three_hours for i in c]
    assert len(three_hours) == 100 and len(flat) == 1600 and len(set(flat)) == 1600 and flat[-1] < 10799
    gaps = {b - a for a, b in zip(flat, flat[1:])}
    assert gaps <= {6, 7, 8}  # sparser beyond 1600 s: one frame every 10800/1600 = 6.75 frames


def test_stream_duration_counts_one_sampling_step():
    assert stream_duration([]) == 0.0
    assert stream_duration([3.0]) == 1.0
    assert stream_duration([0.0, 0.5, 1.0, 1.5]) == 2.0


def test_squash_to_square_nearest():
    frames = torch.arange(2 * 4 * 6 * 3, dtype=torch.int64).remainder(256).to(torch.uint8).view(2, 4, 6, 3)
    square = squash_to_square(frames)
    assert square.shape == (2, 4, 4, 3)
    # nearest with scale 6/4: output column j reads source column floor(j * 1.5) = 0, 1, 3, 4
    assert torch.equal(square, frames[:, :, [0, 1, 3, 4]])
    square_input = frames[:, :, :4]
    assert torch.equal(squash_to_square(square_input), square_input)  # already square: unchanged
    with pytest.raises(ValueError, match="uint8"):
        squash_to_square(frames.float())
