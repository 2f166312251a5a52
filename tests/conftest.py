"""Shared pytest fixtures: tiny random-weight towers built from explicit HF configs (no hub)."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"

TINY_VIT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, image_size=28, patch_size=7)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny_siglip(attn="sdpa", layers=3, dtype=torch.float32):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    config = SiglipVisionConfig(**{**TINY_VIT, "num_hidden_layers": layers})
    config._attn_implementation = attn
    return SiglipVisionModel(config).eval().to(dtype)


def tiny_clip(attn="sdpa", layers=3, dtype=torch.float32):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(**{**TINY_VIT, "num_hidden_layers": layers}, projection_dim=16)
    config._attn_implementation = attn
    return CLIPVisionModel(config).eval().to(dtype)


def drifting_frames(count, size=28, drift=0.05, seed=0):
    """A temporally redundant stream [count, 3, size, size]: a base image plus a small drift per frame."""
    generator = torch.Generator().manual_seed(seed)
    frames = [torch.randn(1, 3, size, size, generator=generator)]
    for _ in range(count - 1):
        frames.append(frames[-1] + drift * torch.randn(1, 3, size, size, generator=generator))
    return torch.cat(frames)


@pytest.fixture
def towers():
    """Factories for tiny towers: towers.siglip(attn=...), towers.clip(...), towers.frames(n)."""
    return SimpleNamespace(siglip=tiny_siglip, clip=tiny_clip, frames=drifting_frames)
