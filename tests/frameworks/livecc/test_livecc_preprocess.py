"""Pre-processing and the turn builder: hand-computed sizes, patch order, turn times and frame counts."""

import pytest
import torch

from frameworks.livecc.turns import TurnBuilder
from frameworks.common.frame_sampling import uniform_indices
from frameworks.livecc.video import PatchSpec, clip_max_pixels, patchify, smart_resize


def test_smart_resize_hand_computed():
    # 480x640 over the demo budget 384*28*28 = 301056: beta = sqrt(307200/301056); floor(480/beta/28) = 16,
    # floor(640/beta/28) = 22 -> 448 x 616
    assert smart_resize(480, 640, 28, 100 * 784, 384 * 784) == (448, 616)
    # 48x64 under the minimum 100*28*28 = 78400: beta = sqrt(78400/3072); ceil(48*beta/28) = 9, ceil(64*beta/28) = 12
    assert smart_resize(48, 64, 28, 100 * 784, 384 * 784) == (252, 336)
    # inside the budget: nearest multiples of 28 (round(70/28) = 2 with Python's half-to-even, round(100/28) = 4)
    assert smart_resize(70, 100, 28, 784, 10_000) == (56, 112)
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(1, 300, 28, 784, 10_000)


def test_clip_budget_hand_computed():
    # 480 frames: 24576*784/480*2 = 80281.6 is below 1.05 * 78400 = 82320 -> the floor wins
    assert clip_max_pixels(480, 100 * 784, 24576 * 784, 24576 * 784) == 82320
    # 8 frames: 24576*784/8*2 = 4816896 (below the per-frame max)
    assert clip_max_pixels(8, 100 * 784, 24576 * 784, 24576 * 784) == 4816896
    assert uniform_indices(5, 8) == [0, 1, 2, 3, 4]
    assert uniform_indices(10, 4) == [0, 3, 6, 9]


def test_patch_rows_follow_the_processor_order():
    """p=2, merge 2: value = 1000*frame + 100*channel + 10*y + x. Row r of group t is merge block
    (r // 4) in row-major block order, cell (r % 4) inside it; a row lists (channel, frame, y, x)."""
    spec = PatchSpec(patch_size=2, temporal_patch_size=2, merge_size=2)
    f, c, y, x = torch.meshgrid(torch.arange(3), torch.arange(3), torch.arange(4), torch.arange(8), indexing="ij")
    pixels = (1000 * f + 100 * c + 10 * y + x).float()
    values, grid = patchify(pixels, spec)
    assert grid == (2, 2, 4)  # 3 frames -> padded to 4 (last frame repeated) -> 2 groups; 4x8 px -> 2x4 patches
    assert values.shape == (2 * 2 * 4, 3 * 2 * 2 * 2)
    first = values[0].view(3, 2, 2, 2)  # (channel, frame, y, x) of patch (0, 0) of group 0
    assert first[1, 1, 1, 0] == 1000 * 1 + 100 * 1 + 10 * 1 + 0
    # row 5 = block 1 (block row 0, block col 1 -> patch cols 2..3), cell 1 (row 0, col 1) -> patch (0, 3)
    assert values[5].view(3, 2, 2, 2)[0, 0, 0, 0] == 6  # x = 3 * 2
    # group 1 holds frames 2 and 3, frame 3 being a copy of frame 2
    group1 = values[8].view(3, 2, 2, 2)
    assert group1[0, 0, 0, 0] == 2000 and group1[0, 1, 0, 0] == 2000


def test_turn_builder_times_and_frame_counts():
    builder = TurnBuilder(first_frames=6, turn_frames=2, frame_interval=0.5)
    frames = torch.zeros(11, 4, 4, 3, dtype=torch.uint8)
    turns = builder.push(frames[:4], [0.0, 0.5, 1.0, 1.5]) + builder.push(frames[4:11], [2.0 + 0.5 * i for i in range(7)])
    assert [t.frames.shape[0] for t in turns] == [6, 2, 2]
    assert [t.label for t in turns] == ["Time=0.0-3.0s", "Time=3.0-4.0s", "Time=4.0-5.0s"]
    assert [t.first for t in turns] == [True, False, False]
    pending = builder.pending()
    assert pending.frames.shape[0] == 1 and pending.label == "Time=5.0-5.5s"
    assert builder.pending() is not None  # pending() does not consume
    more = builder.push(frames[:1])  # no timestamps: continues at the frame interval
    assert [t.label for t in more] == ["Time=5.0-6.0s"] and builder.pending() is None


def test_turn_builder_chunking_does_not_matter():
    frames = torch.arange(13).view(13, 1, 1, 1).expand(13, 2, 2, 3).to(torch.uint8)
    stamps = [0.5 * i for i in range(13)]
    whole = TurnBuilder(6, 2, 0.5).push(frames, stamps)
    builder, pieces = TurnBuilder(6, 2, 0.5), []
    for start, stop in ((0, 1), (1, 4), (4, 9), (9, 13)):
        pieces += builder.push(frames[start:stop], stamps[start:stop])
    assert [t.label for t in pieces] == [t.label for t in whole]
    assert all(torch.equal(a.frames, b.frames) for a, b in zip(pieces, whole))
    with pytest.raises(ValueError, match="timestamps"):
        builder.push(frames[:2], [0.0])


def test_precomputed_vision_call_args_give_the_stock_tower_output(lc, shared_loaded):
    """The sync-free call (CPU cu_seqlens, precomputed rotary positions) equals the plain stock call."""
    from frameworks.livecc.vit import VisionCallArgs

    visual = shared_loaded.model.model.visual
    values, (groups, grid_h, grid_w) = lc.patches(shared_loaded, lc.video(6), lc.size)
    with torch.no_grad():
        plain = visual(values, grid_thw=torch.tensor([[groups, grid_h, grid_w]])).pooler_output
        ours = visual(values, **VisionCallArgs(visual, torch.device("cpu"))(groups, grid_h, grid_w)).pooler_output
    torch.testing.assert_close(ours, plain, rtol=0, atol=0)


def test_turn_builder_refuses_frames_at_another_rate():
    builder = TurnBuilder(6, 2, 0.5)
    builder.push(torch.zeros(2, 2, 2, 3, dtype=torch.uint8), [0.0, 0.48])  # 25 fps, stride 12: accepted
    with pytest.raises(ValueError, match="benchmark.fps"):
        builder.push(torch.zeros(2, 2, 2, 3, dtype=torch.uint8), [1.48, 2.48])  # 1 fps
