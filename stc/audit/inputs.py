"""Load a vision tower from a local HF folder and turn RGB frames into its inputs.

The audit feeds the tower directly (no VLM around it), so it needs, per family: the tower module that
`attach_cacher` patches, the input resolution, the normalisation, and how a batch of frames becomes
one tower call. Preprocessing is deliberately plain (resize the whole frame to size x size, bilinear
with antialias, then normalise): the audit compares the tower with itself, so what matters is that
both passes see the same pixels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
OPENAI_CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@dataclass
class Tower:
    """A vision tower plus how to call it on a chunk of frames [F, 3, S, S] -> final hidden states [F, T, D]."""

    module: nn.Module
    family: str  # "siglip", "clip", "dinov2", "qwen2_vl"
    size: int
    mean: tuple
    std: tuple
    encode: Callable[[torch.Tensor], torch.Tensor]


def _vision_part(model: nn.Module) -> nn.Module:
    """The vision tower of a composite checkpoint (CLIPModel, SiglipModel, Qwen2-VL), else the model."""
    for name in ("vision_model", "visual", "vision_tower"):
        part = getattr(model, name, None) or getattr(getattr(model, "model", None), name, None)
        if isinstance(part, nn.Module):
            return part
    return model


def _family(module: nn.Module) -> str:
    name = type(module).__name__.lower()
    for family in ("qwen2", "dinov2", "siglip", "clip"):
        if family in name:
            return "qwen2_vl" if family == "qwen2" else family
    raise ValueError(f"model: {type(module).__name__} is not a SigLIP, CLIP, DINOv2 or Qwen2-VL vision tower")


def _normalisation(folder: Path, family: str) -> tuple:
    config = folder / "preprocessor_config.json"
    if config.is_file():
        data = json.loads(config.read_text())
        if "image_mean" in data and "image_std" in data:
            return tuple(data["image_mean"]), tuple(data["image_std"])
    return {"dinov2": IMAGENET, "siglip": HALF}.get(family, OPENAI_CLIP)


def load_tower(folder: str | Path, size: int | None = None, dtype: torch.dtype = torch.float32, device="cpu") -> Tower:
    """The tower of the checkpoint in `folder` (from_pretrained, local files only), in eval mode."""
    from transformers import AutoConfig, AutoModel

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ValueError(f"model={folder}: no config.json (expected a local Hugging Face folder)")
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    if config.model_type in ("qwen2_vl", "qwen2_vl_vision"):
        from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VisionTransformerPretrainedModel

        vision = getattr(config, "vision_config", config)
        model = Qwen2VisionTransformerPretrainedModel.from_pretrained(folder, config=vision, local_files_only=True)
    else:
        model = AutoModel.from_pretrained(folder, local_files_only=True)
    module = _vision_part(model).to(device=device, dtype=dtype).eval()
    family = _family(module)
    mean, std = _normalisation(folder, family)
    if family == "qwen2_vl":
        cfg = module.config
        unit = cfg.patch_size * cfg.spatial_merge_size
        size = size or 224
        if size % unit:
            raise ValueError(f"size={size}: Qwen2-VL needs a multiple of patch_size*spatial_merge_size = {unit}")
        encode = lambda x: _qwen_encode(module, x)  # noqa: E731
    else:
        size = size or (224 if family == "dinov2" else int(module.config.image_size))
        encode = lambda x: module(pixel_values=x).last_hidden_state  # noqa: E731
    return Tower(module, family, size, mean, std, encode)


def preprocess(frames: np.ndarray, tower: Tower) -> torch.Tensor:
    """uint8 [F, H, W, 3] -> normalised [F, 3, S, S] in the tower's dtype and device."""
    param = next(tower.module.parameters())
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(tower.size, tower.size), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(tower.mean)[:, None, None]
    std = torch.tensor(tower.std)[:, None, None]
    return ((x - mean) / std).to(device=param.device, dtype=param.dtype)


def qwen_patches(frames: torch.Tensor, patch: int, temporal: int, merge: int) -> torch.Tensor:
    """[F, C, S, S] -> [F * gh * gw, C * temporal * patch * patch]: each frame is one temporal group
    (the frame repeated `temporal` times, as Qwen2-VL's processor does for a still image), patches in
    the processor's merge-window order."""
    count, channels, height, width = frames.shape
    gh, gw = height // patch, width // patch
    x = frames[:, None].expand(count, temporal, channels, height, width)
    x = x.reshape(count, temporal, channels, gh // merge, merge, patch, gw // merge, merge, patch)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(count * gh * gw, channels * temporal * patch * patch)


def _qwen_encode(module: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    cfg = module.config
    count, _, height, width = frames.shape
    gh, gw = height // cfg.patch_size, width // cfg.patch_size
    grid = torch.tensor([[count, gh, gw]], device=frames.device)
    flat = qwen_patches(frames, cfg.patch_size, cfg.temporal_patch_size, cfg.spatial_merge_size)
    out = module(flat, grid_thw=grid)
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out
    return hidden.reshape(count, gh * gw, -1)
