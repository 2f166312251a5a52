"""Fixtures for LiveCC host tests: tiny random Qwen2-VL models (explicit configs, CPU, fp32)."""

from types import SimpleNamespace

import pytest
import torch

from tests.videos import drifting_video

# frames of 70 x 100 px -> smart_resize (factor 28) -> 56 x 112 -> 4 x 8 patches -> 2 x 4 merged tokens per
# 2-frame group: a non-square grid whose rows and columns differ from the temporal extent of a first turn
FRAME_H, FRAME_W = 70, 100
TINY_PIXELS = dict(min_pixels=28 * 28, max_pixels=10_000, clip_min_pixels=28 * 28, clip_total_pixels=100_000)


def tiny_loaded(seed=0):
    """Tiny LiveCC whose LM attention is sharpened: default init gives near-uniform attention under which
    wrong positions or masks would change logits by < 1e-5 and go unnoticed."""
    from frameworks.common.model_sizes import qwen2_vl_config
    from frameworks.livecc import build_random_livecc

    loaded = build_random_livecc(qwen2_vl_config("tiny"), dtype="float32", device="cpu", seed=seed)
    generator = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        for layer in loaded.model.model.language_model.layers:
            attn = layer.self_attn
            for proj in (attn.q_proj, attn.k_proj):
                proj.weight.copy_(torch.randn(proj.weight.shape, generator=generator) * 0.15)
            for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
                proj.bias.copy_(torch.randn(proj.bias.shape, generator=generator) * 0.5)
        for block in loaded.model.model.visual.blocks:  # same for the ViT (fused qkv)
            block.attn.qkv.weight.copy_(torch.randn(block.attn.qkv.weight.shape, generator=generator) * 0.15)
    return loaded


def make_host(loaded=None, compression=None, **settings):
    from frameworks.livecc import LiveCCConfig, LiveCCHost

    settings = {"random_weights": True, "dtype": "float32", "device": "cpu", **TINY_PIXELS, **settings}
    return LiveCCHost(loaded or tiny_loaded(), LiveCCConfig(**settings), compression)


def video(count, height=FRAME_H, width=FRAME_W, seed=0, drift=8):
    """uint8 [count, H, W, 3]: tests/videos.py `drifting_video`."""
    return drifting_video(count, height, width, seed, drift)


def stock_logits(loaded, ids, videos):
    """Last-position logits of ONE stock `Qwen2VLForConditionalGeneration` forward over the whole id history,
    with every video's patches and grid (`videos` = [(pixel_values_videos, (t, h, w)), ...]): stock
    embedding scatter and stock `get_rope_index` (mm_token_type_ids marks the video tokens)."""
    model = loaded.model
    input_ids = torch.tensor([ids])
    kwargs = {}
    if videos:
        kwargs = dict(pixel_values_videos=torch.cat([v for v, _ in videos]),
                      video_grid_thw=torch.tensor([list(g) for _, g in videos]),
                      mm_token_type_ids=(input_ids == model.config.video_token_id).int() * 2)
    with torch.no_grad():
        return model(input_ids=input_ids, **kwargs).logits[0, -1].float()


def patches(loaded, frames, size):
    from frameworks.livecc.video import patchify, resize_frames

    return patchify(resize_frames(frames, size, loaded.patches, torch.device("cpu"), torch.float32), loaded.patches)


@pytest.fixture(scope="module")
def shared_loaded():
    return tiny_loaded(seed=3)


@pytest.fixture
def lc():
    """Factories: lc.loaded(seed), lc.host(loaded, compression, **settings), lc.video(n), lc.stock_logits(...),
    lc.patches(loaded, frames, (h, w))."""
    return SimpleNamespace(loaded=tiny_loaded, host=make_host, video=video, stock_logits=stock_logits,
                           patches=patches, size=(56, 112))
