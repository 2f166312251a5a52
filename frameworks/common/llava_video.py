"""The LLaVA-style video feature path shared by hosts: uint8 frames -> pixels -> tower -> projector -> 2x pool.

Why our own code instead of `get_video_features`: the stock transformers method appends one image-newline
token per video (inside the method in 5.23, in `forward` in 5.17) and always records every hidden state.
Streaming hosts (ReKV and STC) feed the LLM exactly 196 tokens per frame with NO newline, frame by frame,
and want the tower call, projector and pooling timed separately. The pieces below call the stock modules
(`vision_tower`, `multi_modal_projector`) and reproduce `apply_pooling` (bilinear, ceil(g/2)).

Pre-processing: transformers' video processors need torchvision, which is not a dependency here, so
frames are resized with `torch.nn.functional.interpolate` (bicubic, antialias, on the target device),
rescaled to [0, 1] and normalised with the checkpoint's mean/std (SigLIP: mean = std = 0.5). The HF
processor resizes with torchvision's bicubic kernel; pixel values can differ by a few 1e-3 from it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from frameworks.common.uploads import upload, upload_tensor


@dataclass(frozen=True)
class PixelSpec:
    """How raw frames become tower input: square `size` px, per-channel `mean`/`std` on [0, 1] values."""

    size: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @classmethod
    def from_checkpoint(cls, path: str | Path, image_size: int) -> "PixelSpec":
        """Read mean/std from a checkpoint's `preprocessor_config.json` / `video_preprocessor_config.json`
        when present (defaults: SigLIP's 0.5/0.5). The size always comes from the vision config."""
        for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
            file = Path(path) / name
            if file.is_file():
                data = json.loads(file.read_text())
                mean, std = data.get("image_mean", cls.mean), data.get("image_std", cls.std)
                return cls(size=image_size, mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std))
        return cls(size=image_size)


def pixel_normalization(mean, std, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (mean, std) as float32 [1, 3, 1, 1] tensors on `device`, for `preprocess_frames`.

    Why a separate step: the constants are the same for every frame of a checkpoint, so a host builds them
    once at init and passes them to every ingest instead of uploading six floats per call (hot path)."""
    return (upload(mean, device, torch.float32).view(1, 3, 1, 1),
            upload(std, device, torch.float32).view(1, 3, 1, 1))


def preprocess_frames(frames: torch.Tensor, spec, device: torch.device, dtype: torch.dtype,
                      normalization: tuple[torch.Tensor, torch.Tensor] | None = None,
                      size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """uint8 RGB frames [F, H, W, 3] -> normalised pixels [F, 3, h, w] in `dtype` on `device`.

    `spec` carries `mean`/`std` (a `PixelSpec`, or LiveCC's `PatchSpec`); `size` is a square side or
    (h, w), default `spec.size`. `normalization` is `pixel_normalization(spec.mean, spec.std, device)`
    built once by the caller; without it the constants are uploaded on this call."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [F, H, W, 3] RGB, got shape {tuple(frames.shape)}")
    if frames.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 (0..255), got dtype {frames.dtype}")
    size = spec.size if size is None else size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    pixels = upload_tensor(frames, device).permute(0, 3, 1, 2).float()  # no stream sync (uploads.py)
    if tuple(pixels.shape[-2:]) != (height, width):
        pixels = F.interpolate(pixels, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
        pixels = pixels.clamp_(0.0, 255.0)
    mean, std = normalization if normalization is not None else pixel_normalization(spec.mean, spec.std, device)
    return ((pixels / 255.0 - mean) / std).to(dtype)


def tower_features(vision_tower: nn.Module, pixels: torch.Tensor, feature_layer: int | list[int], strategy: str,
                   return_hidden_states: bool = False):
    """Run the vision tower on [F, 3, H, W]; return the selected hidden states [F, T, D_vision].

    `feature_layer` indexes `hidden_states` (embeddings output at 0, so -1 = last encoder layer, before the
    post-layernorm, as LLaVA-OV uses); a list concatenates layers on the channel axis. Strategy "default"
    drops the first (CLS) token, "full" keeps all tokens (SigLIP has no CLS). With `return_hidden_states`
    the result is (selected, all hidden states) for side information (`vision_side.tower_side`).
    """
    outputs = vision_tower(pixel_values=pixels, output_hidden_states=True)
    if isinstance(feature_layer, int):
        selected = outputs.hidden_states[feature_layer]
    else:
        selected = torch.cat([outputs.hidden_states[i] for i in feature_layer], dim=-1)
    if strategy == "default":
        selected = selected[:, 1:]
    elif strategy != "full":
        raise ValueError(f"vision_feature_select_strategy must be 'default' or 'full', got {strategy!r}")
    return (selected, outputs.hidden_states) if return_hidden_states else selected


def pool_2x(features: torch.Tensor) -> torch.Tensor:
    """Bilinear 2x down-sampling of a square token grid: [F, g*g, D] -> [F, ceil(g/2)^2, D] (27x27 -> 14x14).

    Same arithmetic as `LlavaOnevisionModel.apply_pooling`; no image-newline token is added."""
    frames, tokens, dim = features.shape
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise ValueError(f"pool_2x needs a square token grid, got {tokens} tokens per frame")
    maps = features.view(frames, grid, grid, dim).permute(0, 3, 1, 2)
    side = math.ceil(grid / 2)
    maps = F.interpolate(maps, size=(side, side), mode="bilinear")
    return maps.permute(0, 2, 3, 1).reshape(frames, side * side, dim)


def pooled_grid_tokens(image_size: int, patch_size: int) -> int:
    """Tokens per frame after `pool_2x` for a square image: ceil((image_size // patch_size) / 2) ** 2."""
    return math.ceil((image_size // patch_size) / 2) ** 2
