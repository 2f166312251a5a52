"""One tiny random tower per registered ViT family, and how to feed it frames.

`FAMILIES[name]` gives `build(dtype, attn)`, `frames(n, drift, seed)` -> one input per schedule unit
(a frame; a 2-frame temporal group for Qwen2-VL) stacked on dim 0, and `encode(model, units)` -> the
encoder's final hidden states as rows [n, T, D]. Tests parametrized over `FAMILY_NAMES` run for every
family in `stc.integrations.anatomy.FAMILIES` (a new family without an entry here fails loudly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from stc.integrations.anatomy import FAMILIES as REGISTERED


def _drift(shape, count, drift, seed, dtype):
    generator = torch.Generator().manual_seed(seed)
    units = [torch.randn(*shape, generator=generator, dtype=torch.float64)]
    for _ in range(count - 1):
        units.append(units[-1] + drift * torch.randn(*shape, generator=generator, dtype=torch.float64))
    return torch.stack(units).to(dtype)


def _vit_encode(model, units):
    return model(pixel_values=units).last_hidden_state


@dataclass
class Family:
    name: str
    build: Callable
    frames: Callable
    encode: Callable
    prefix_tokens: int


def _siglip(dtype=torch.float64, attn="sdpa"):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    config = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                                image_size=28, patch_size=7)
    config._attn_implementation = attn
    return SiglipVisionModel(config).eval().to(dtype)


def _clip(dtype=torch.float64, attn="sdpa"):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                              image_size=28, patch_size=7, projection_dim=16)
    config._attn_implementation = attn
    return CLIPVisionModel(config).eval().to(dtype)


def _dinov2(dtype=torch.float64, attn="sdpa"):
    from transformers import Dinov2Config, Dinov2Model

    config = Dinov2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                          image_size=28, patch_size=7, layerscale_value=0.5)
    config._attn_implementation = attn
    model = Dinov2Model(config).eval().to(dtype)
    with torch.no_grad():  # random layer scales, so a wrong scale placement cannot hide behind 0.5 everywhere
        for layer in model.encoder.layer:
            layer.layer_scale1.lambda1.uniform_(0.2, 1.5)
            layer.layer_scale2.lambda1.uniform_(0.2, 1.5)
    return model


QWEN_GRID = (4, 4)  # h, w patches per temporal group (merge 2x2 -> 4 LLM tokens)
QWEN_PATCH = 3 * 2 * 4 * 4  # channels * temporal_patch_size * patch * patch


def _qwen2_vl(dtype=torch.float64, attn="sdpa"):
    from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLVisionConfig
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VisionTransformerPretrainedModel

    config = Qwen2VLVisionConfig(depth=3, embed_dim=32, hidden_size=24, num_heads=4, mlp_ratio=2, patch_size=4,
                                 temporal_patch_size=2, spatial_merge_size=2, in_channels=3)
    config._attn_implementation = attn
    return Qwen2VisionTransformerPretrainedModel(config).eval().to(dtype)


def _qwen_encode(model, units):
    """units [G, h*w, patch_dim]: G temporal groups of one video in ONE call (as LiveCC calls it)."""
    groups, tokens, _ = units.shape
    grid = torch.tensor([[groups, *QWEN_GRID]], device=units.device)
    out = model(units.reshape(groups * tokens, -1), grid_thw=grid).last_hidden_state
    return out.view(groups, tokens, -1)


def _image_frames(count, drift=0.05, seed=0, dtype=torch.float64):
    return _drift((3, 28, 28), count, drift, seed, dtype)


def _qwen_frames(count, drift=0.05, seed=0, dtype=torch.float64):
    return _drift((QWEN_GRID[0] * QWEN_GRID[1], QWEN_PATCH), count, drift, seed, dtype)


TOWERS = {
    "siglip": Family("siglip", _siglip, _image_frames, _vit_encode, 0),
    "clip": Family("clip", _clip, _image_frames, _vit_encode, 1),
    "dinov2": Family("dinov2", _dinov2, _image_frames, _vit_encode, 1),
    "qwen2_vl": Family("qwen2_vl", _qwen2_vl, _qwen_frames, _qwen_encode, 0),
}
# registered family -> the towers that exercise it (siglip_clip covers two model classes)
COVERAGE = {"siglip_clip": ("siglip", "clip"), "dinov2": ("dinov2",), "qwen2_vl": ("qwen2_vl",)}
TOWER_NAMES = [tower for family in REGISTERED for tower in COVERAGE.get(family, (f"<no test tower for {family}>",))]
