"""Token shapes and values through the 2x2 concatenation and the PoolProjector (hand-built inputs)."""

import torch

from frameworks.dispider.model import DispiderArchitecture, PoolProjector, concat_2x2


def test_concat_2x2_orders_neighbours_row_major():
    grid, channels = 4, 3
    # value = 100 * row + 10 * col + channel, so every element says where it came from
    rows = torch.arange(grid).view(grid, 1, 1) * 100
    cols = torch.arange(grid).view(1, grid, 1) * 10
    feature = (rows + cols + torch.arange(channels).view(1, 1, channels)).float().view(1, grid * grid, channels)
    out = concat_2x2(torch.cat([feature, feature + 1000]))
    assert out.shape == (2, 4, 12)

    def at(r, c):
        return [100 * r + 10 * c + ch for ch in range(channels)]

    # token (1, 0) of the 2x2 map = patches (2,0), (2,1), (3,0), (3,1)
    assert out[0, 2].tolist() == at(2, 0) + at(2, 1) + at(3, 0) + at(3, 1)
    assert out[0, 1].tolist() == at(0, 2) + at(0, 3) + at(1, 2) + at(1, 3)
    assert torch.equal(out[1], out[0] + 1000)


def test_released_sizes_give_64_tokens_of_4096_and_1089_compressor_tokens_per_clip():
    arch = DispiderArchitecture.from_sizes("released")
    assert (arch.grid, arch.tokens_per_frame, arch.clip_token_width) == (16, 64, 4096)
    assert (arch.compressor.hidden_size, arch.reaction.hidden_size) == (1536, 3584)
    assert arch.vision.num_hidden_layers == 24 and arch.vision.hidden_size == 1024
    clip = concat_2x2(torch.randn(16, 256, 1024))
    assert clip.shape == (16, 64, 4096)
    projector = PoolProjector(4096, 1536, pool_num=4)
    with torch.no_grad():
        out = projector(clip)
    assert out.shape == (16 * 64 + 16 * 4 + 1, 1536)


def test_pool_projector_slots_and_global_token_are_means_of_the_full_map():
    torch.manual_seed(0)
    frames, side, width = 3, 4, 5
    full = torch.randn(frames, side * side, width)
    projector = PoolProjector(width, 7, pool_num=4)
    slots = projector.slots(full)
    maps = full.view(frames, side, side, width)
    # slot 1 of frame 2 = mean of the top-right 2x2 quadrant
    torch.testing.assert_close(slots[2 * 4 + 1], maps[2, :2, 2:].reshape(-1, width).mean(0))
    torch.testing.assert_close(slots[0 * 4 + 2], maps[0, 2:, :2].reshape(-1, width).mean(0))
    kept = full[:, [0, 5, 10]]  # what a TOKENS method left
    with torch.no_grad():
        out = projector(kept, full=full)
        expected = projector.mlp(torch.cat([kept.reshape(-1, width), slots, full.reshape(-1, width).mean(0, keepdim=True)]))
    assert out.shape == (frames * 3 + frames * 4 + 1, 7)
    torch.testing.assert_close(out, expected)


def test_host_frame_tokens_shape(dsp):
    host = dsp.host()
    square = host.resize(dsp.video(3))
    assert square.shape == (3, 112, 112, 3) and square.dtype == torch.uint8
    tokens = host.frame_tokens(square)
    assert tokens.shape == (3, 16, 128)
    # = hidden_states[-2] of the stock tower without CLS, 2x2-concatenated
    from frameworks.common.llava_video import preprocess_frames

    with torch.no_grad():
        pixels = preprocess_frames(square, host.pixel_spec, host.device, host.dtype)
        hidden = host.model.vision_tower(pixel_values=pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
    torch.testing.assert_close(tokens, concat_2x2(hidden))
