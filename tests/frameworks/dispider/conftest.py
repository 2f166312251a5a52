"""Fixtures for Dispider host tests: tiny random-weight models (explicit configs, CPU, fp32)."""

from types import SimpleNamespace

import pytest
import torch

from tests.videos import drifting_video


def tiny_loaded(seed=0):
    from frameworks.dispider import DispiderArchitecture
    from frameworks.dispider.loading import build_random_dispider

    loaded = build_random_dispider(DispiderArchitecture.from_sizes("tiny"), "float32", "cpu", seed=seed)
    sharpen(loaded.model, seed)
    return loaded


def sharpen(model, seed, std=0.2):
    """Default init (std 0.02) makes every compressor state nearly the same vector, so a wrong position,
    clip or mask would change outputs below any tolerance. Larger q/k weights, biases and embeddings make
    the states (and the grounding similarities) depend strongly on their inputs."""
    generator = torch.Generator().manual_seed(2000 + seed)
    with torch.no_grad():
        for lm in (model.compressor, model.reaction.model):
            for layer in lm.layers:
                attn = layer.self_attn
                for proj in (attn.q_proj, attn.k_proj):
                    proj.weight.copy_(torch.randn(proj.weight.shape, generator=generator) * std)
                for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
                    proj.bias.copy_(torch.randn(proj.bias.shape, generator=generator) * 0.5)
            lm.embed_tokens.weight.copy_(torch.randn(lm.embed_tokens.weight.shape, generator=generator))


def make_host(loaded=None, compression=None, **settings):
    from frameworks.dispider import DispiderHost, DispiderSettings

    settings = {"random_weights": True, "preset": "tiny", "dtype": "float32", "device": "cpu", **settings}
    return DispiderHost(loaded or tiny_loaded(), DispiderSettings(**settings), compression)


def video(count, height=40, width=52, seed=0, drift=8):
    """uint8 [count, H, W, 3]: tests/videos.py `drifting_video`."""
    return drifting_video(count, height, width, seed, drift)


def seconds(count, start=0.0):
    return [start + float(i) for i in range(count)]


@pytest.fixture
def dsp():
    """dsp.loaded(seed), dsp.host(loaded, compression, **settings), dsp.video(n), dsp.seconds(n, start)."""
    return SimpleNamespace(loaded=tiny_loaded, host=make_host, video=video, seconds=seconds)
