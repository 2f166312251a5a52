"""Build the timed models: vision tower and LLM at the preset's released sizes (random weights), or
from a local checkpoint (`model.path`). Also synthetic streaming frames and the baseline CUDA graph.

Random weights are valid for latency: the work done does not depend on weight values. Models are
created directly on the target device in the target dtype (`_from_config(..., dtype=)` under a device
context), so a 7B LLM never materialises in fp32 on the host.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from frameworks.common import model_sizes
from speed_benchmark.config import PresetConfig, SpeedConfig, SpeedConfigError
from stc.cuda_capture import capture


@dataclass
class ModelSpec:
    """Resolved sizes: the vision and text configs plus what the harness derives from them."""

    vision_config: Any
    text_config: Any
    family: str
    vit_tokens: int  # tokens per call seen by every ViT layer (T)
    frame_size: int  # pixels per side


def resolve_spec(preset: PresetConfig, path: str | None = None) -> ModelSpec:
    """Vision/text configs of a preset (by model-size name) or of a local checkpoint's config.json."""
    if path:
        from transformers import AutoConfig

        try:
            full = AutoConfig.from_pretrained(path)
        except (OSError, ValueError) as error:
            raise SpeedConfigError(f"invalid speed setting model.path={path!r}: cannot read its config ({error})")
        vision, text = full.vision_config, full.text_config
    elif preset.model_config:
        full = _named(preset.model_config, "preset.model_config")
        vision, text = full.vision_config, full.text_config
    else:
        vision, text = _named(preset.vision, "preset.vision"), _named(preset.text, "preset.text")
    if preset.vision_family == "qwen2_vl":
        size = preset.frame_size or 448
        merge = vision.patch_size * vision.spatial_merge_size
        if size % merge:
            raise SpeedConfigError(f"invalid speed setting preset.frame_size={size}: must be a multiple of {merge}")
        return ModelSpec(vision, text, preset.vision_family, (size // vision.patch_size) ** 2, size)
    if preset.frame_size and preset.frame_size != vision.image_size:
        vision = copy.deepcopy(vision)
        vision.image_size = preset.frame_size
    return ModelSpec(vision, text, preset.vision_family, model_sizes.tokens_per_frame(vision), vision.image_size)


def _named(name: str, knob: str):
    try:
        return model_sizes.build_config(name)
    except KeyError as error:
        raise SpeedConfigError(f"invalid speed setting {knob}={name!r}: {error.args[0]}") from None


def resolve_device_dtype(cfg: SpeedConfig) -> tuple[torch.device, torch.dtype]:
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))
    if cfg.model.dtype == "auto":
        return device, torch.bfloat16 if device.type == "cuda" else torch.float32
    return device, getattr(torch, cfg.model.dtype)


def _vision_class(family: str):
    from transformers import CLIPVisionModel, SiglipVisionModel
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VisionTransformerPretrainedModel

    return {"siglip": SiglipVisionModel, "clip": CLIPVisionModel,
            "qwen2_vl": Qwen2VisionTransformerPretrainedModel}[family]


def _random(cls, config, device, dtype, attn: str) -> nn.Module:
    config = copy.deepcopy(config)
    config._attn_implementation = attn
    with torch.device(device):
        model = (cls.from_config if hasattr(cls, "from_config") else cls._from_config)(config, dtype=dtype)
    return model.eval().requires_grad_(False)


def _from_checkpoint(path: str, device, dtype, attn: str) -> nn.Module:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, attn_implementation=attn)
    return model.to(device).eval().requires_grad_(False)


def build_vision_tower(spec: ModelSpec, cfg: SpeedConfig, device, dtype) -> nn.Module:
    """The vision tower alone (what STC-Cacher patches)."""
    if cfg.model.path:
        full = _from_checkpoint(cfg.model.path, device, dtype, cfg.model.attn_implementation)
        inner = full.model
        return getattr(inner, "vision_tower", None) or inner.visual
    return _random(_vision_class(spec.family), spec.vision_config, device, dtype, cfg.model.attn_implementation)


def build_llm(spec: ModelSpec, cfg: SpeedConfig, device, dtype) -> nn.Module:
    """The decoder stack that receives visual tokens (no LM head: pre-fill never needs logits)."""
    if cfg.model.path:
        return _from_checkpoint(cfg.model.path, device, dtype, cfg.model.attn_implementation).model.language_model
    from transformers import AutoModel

    return _random(AutoModel, spec.text_config, device, dtype, cfg.model.attn_implementation)


# ----------------------------------------------------------------------------------------- inputs
def synthetic_frames(spec: ModelSpec, frames: int, device, dtype, seed: int) -> torch.Tensor:
    """A temporally redundant stream: a smooth random image drifting by ±8/255 per frame (as upstream),
    normalised with mean = std = 0.5. Shape [F, 3, H, W] (SigLIP/CLIP)."""
    gen = torch.Generator().manual_seed(seed)
    size = spec.frame_size
    low = torch.rand(1, 3, max(2, size // 16), max(2, size // 16), generator=gen)
    base = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)[0]
    drift = torch.cumsum((torch.rand(frames, 3, 1, 1, generator=gen) * 2 - 1) * (8 / 255), dim=0)
    noise = (torch.rand(frames, 3, size, size, generator=gen) * 2 - 1) * (2 / 255)
    video = (base.unsqueeze(0) + drift + noise).clamp(0, 1)
    return ((video - 0.5) / 0.5).to(device=device, dtype=dtype)


def vision_call(tower: nn.Module, spec: ModelSpec, device) -> Callable[[torch.Tensor], Any]:
    """fn(pixels) running the tower on a batch of frames ([B, 3, H, W]); Qwen2-VL gets patches + grid."""
    if spec.family != "qwen2_vl":
        return lambda pixels: tower(pixel_values=pixels)
    v = spec.vision_config
    grid = spec.frame_size // v.patch_size
    patch_dim = v.in_channels * v.temporal_patch_size * v.patch_size**2

    def run(pixels: torch.Tensor):
        # one 2-frame temporal group per stream row; content does not matter for the baseline timing
        b = pixels.shape[0]
        flat = pixels.new_zeros(b * grid * grid, patch_dim) + pixels.mean()
        thw = torch.tensor([[1, grid, grid]] * b, device=device)
        return tower(flat, grid_thw=thw)

    return run


class PlainGraph:
    """CUDA graph of the UNPATCHED tower at a fixed batch (the fair graphed baseline): copy pixels into
    a static input, replay, clone the last hidden state (STC's runner also returns clones)."""

    def __init__(self, fn: Callable[[torch.Tensor], Any], example: torch.Tensor, warmup: int = 3):
        self.static_input = example.clone()
        # the project's one capture protocol (side-stream warm-ups, GC paused while recording, stream set
        # back on failure); the unpatched tower keeps no state, so there is nothing to restore
        self.graph, self.static_output = capture(lambda: fn(self.static_input), lambda: None, example.device,
                                                 warmups=warmup)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        self.static_input.copy_(pixels)
        self.graph.replay()
        out = self.static_output
        return (out.last_hidden_state if hasattr(out, "last_hidden_state") else out).clone()
