"""Shared LLaVA video path pieces and text codecs (frameworks/common)."""

import pytest
import torch

from frameworks.common.llava_video import PixelSpec, pool_2x, pooled_grid_tokens, preprocess_frames
from frameworks.common.text_codec import ByteTextCodec
from frameworks.rekv.attention import prefix_causal_attention, tail_causal_mask


def test_preprocess_resizes_and_normalises_with_siglip_stats():
    frames = torch.full((2, 30, 40, 3), 255, dtype=torch.uint8)
    frames[1] = 0
    pixels = preprocess_frames(frames, PixelSpec(size=21), torch.device("cpu"), torch.float32)
    assert pixels.shape == (2, 3, 21, 21)
    torch.testing.assert_close(pixels[0], torch.ones(3, 21, 21))  # (1 - 0.5) / 0.5
    torch.testing.assert_close(pixels[1], -torch.ones(3, 21, 21))


def test_preprocess_reads_checkpoint_mean_std(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text('{"image_mean": [0.1, 0.2, 0.3], "image_std": [1, 2, 4]}')
    spec = PixelSpec.from_checkpoint(tmp_path, image_size=8)
    assert spec == PixelSpec(size=8, mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 4.0))
    assert PixelSpec.from_checkpoint(tmp_path / "missing", 8) == PixelSpec(size=8)


def test_pool_matches_stock_apply_pooling(rekv):
    model = rekv.loaded().model
    features = torch.randn(3, 81, 64)
    torch.testing.assert_close(pool_2x(features), model.model.apply_pooling(features))
    assert pool_2x(features).shape == (3, pooled_grid_tokens(63, 7), 64) == (3, 25, 64)
    assert pooled_grid_tokens(384, 14) == 196


def test_byte_codec_round_trip_and_specials():
    codec = ByteTextCodec(vocab_size=300)
    ids = codec.encode("<|im_start|>user héllo<|im_end|>")
    assert ids[0] == 256 and ids[-1] == 257 and codec.decode(ids) == "user héllo"
    assert set(codec.eos_token_ids) == {257, 258}
    with pytest.raises(ValueError, match="259"):
        ByteTextCodec(vocab_size=100)


def test_grouped_attention_equals_expanded_eager_attention():
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(*shape, generator=generator) for shape in ((6, 4, 8), (2, 11, 8), (2, 11, 8)))
    out = prefix_causal_attention(q, k, v, scale=0.3)
    k_full, v_full = k.repeat_interleave(3, 0), v.repeat_interleave(3, 0)
    scores = (q @ k_full.transpose(1, 2)) * 0.3
    scores = scores.masked_fill(~tail_causal_mask(4, 11, q.device), float("-inf"))
    expected = (scores.softmax(-1) @ v_full).transpose(0, 1).reshape(4, 48)
    torch.testing.assert_close(out, expected)
    assert tail_causal_mask(2, 4, q.device).tolist() == [[True, True, True, False], [True, True, True, True]]


def test_prebuilt_normalization_and_rectangular_size_match_the_plain_formula():
    """Hosts pass constants built once at init; the result must equal the per-call upload, bit for bit,
    and a (h, w) size (LiveCC's resize_frames) must resize to that rectangle."""
    from frameworks.common.llava_video import pixel_normalization
    from frameworks.livecc.video import PatchSpec, resize_frames

    frames = torch.randint(0, 256, (3, 17, 23, 3), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    spec = PixelSpec(size=11, mean=(0.1, 0.2, 0.3), std=(0.7, 0.9, 1.3))
    cpu = torch.device("cpu")
    normalization = pixel_normalization(spec.mean, spec.std, cpu)
    assert normalization[0].shape == normalization[1].shape == (1, 3, 1, 1)
    plain = preprocess_frames(frames, spec, cpu, torch.float32)
    assert torch.equal(preprocess_frames(frames, spec, cpu, torch.float32, normalization), plain)
    unnormalised = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2).float(), size=(11, 11), mode="bicubic",
                                                   antialias=True, align_corners=False).clamp(0, 255)
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    assert torch.equal(plain, (unnormalised / 255.0 - mean) / std)
    patches = PatchSpec()
    wide = resize_frames(frames, (7, 13), patches, cpu, torch.float32)
    assert wide.shape == (3, 3, 7, 13)
    clip = pixel_normalization(patches.mean, patches.std, cpu)
    assert torch.equal(resize_frames(frames, (7, 13), patches, cpu, torch.float32, clip), wide)
    same_size = resize_frames(frames, (17, 23), patches, cpu, torch.float32, clip)  # no resize: exact rescale
    mean, std = torch.tensor(patches.mean).view(1, 3, 1, 1), torch.tensor(patches.std).view(1, 3, 1, 1)
    assert torch.equal(same_size, (frames.permute(0, 3, 1, 2).float() / 255.0 - mean) / std)
