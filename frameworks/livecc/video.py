"""Qwen2-VL video pre-processing without torchvision: smart_resize, normalisation, 2-frame patchify.

Why our own code: transformers' Qwen2-VL video processor needs torchvision, which is not a dependency
here, and LiveCC resizes frames itself (qwen-vl-utils `smart_resize` + bicubic/antialias) before the
processor only patchifies. What follows reproduces, on the host device:
  * `smart_resize(h, w)`: both sides a multiple of 28 (patch 14 x merge 2), pixel count inside
    [min_pixels, max_pixels], aspect ratio kept (qwen-vl-utils `smart_resize`);
  * `clip_max_pixels(n)`: the per-frame budget of a whole clip (livecc-utils: total budget shared by
    all frames, never below 1.05 x min);
  * `patchify`: [F, 3, H, W] normalised with the CLIP mean/std -> `pixel_values_videos` rows in the
    processor's order (temporal group, merge-block row, merge-block col, row in block, col in block),
    each row the (channel, frame-in-group, y, x) patch; an odd frame count repeats the last frame, as
    the processor does.
Resizing uses `torch.nn.functional.interpolate` (bicubic, antialias); values can differ by ~1e-3 from
torchvision's kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from frameworks.common.llava_video import preprocess_frames

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_ASPECT_RATIO = 200


@dataclass(frozen=True)
class PatchSpec:
    """The Qwen2-VL vision config fields pre-processing needs (from `config.vision_config`)."""

    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    @classmethod
    def from_vision_config(cls, vision, mean=CLIP_MEAN, std=CLIP_STD) -> "PatchSpec":
        return cls(vision.patch_size, vision.temporal_patch_size, vision.spatial_merge_size,
                   tuple(float(m) for m in mean), tuple(float(s) for s in std))


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(h, w), multiples of `factor`, closest to (height, width) with min_pixels <= h*w <= max_pixels."""
    if height < 1 or width < 1:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"frame aspect ratio must be below {MAX_ASPECT_RATIO}, got {height}x{width}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def clip_max_pixels(num_frames: int, min_pixels: int, max_pixels: int, total_pixels: int, frame_factor: int = 2) -> int:
    """Per-frame max pixels of a whole clip: max(min(max_pixels, total / n * 2), int(1.05 * min))."""
    return int(max(min(max_pixels, total_pixels / max(num_frames, 1) * frame_factor), int(min_pixels * 1.05)))


def resize_frames(frames: torch.Tensor, size: tuple[int, int], spec: PatchSpec, device: torch.device,
                  dtype: torch.dtype, normalization: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """uint8 RGB [F, H, W, 3] -> normalised [F, 3, h, w] (bicubic + antialias to `size`); the shared LLaVA
    pre-processing (`frameworks/common/llava_video.preprocess_frames`) with LiveCC's per-clip size."""
    return preprocess_frames(frames, spec, device, dtype, normalization=normalization, size=size)


def patchify(pixels: torch.Tensor, spec: PatchSpec) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """[F, 3, H, W] -> (pixel_values_videos [t*h*w, 3*T*p*p], grid (t, h, w) in patches)."""
    frames, channels, height, width = pixels.shape
    p, tp, m = spec.patch_size, spec.temporal_patch_size, spec.merge_size
    if height % (p * m) or width % (p * m):
        raise ValueError(f"frame size {height}x{width} is not a multiple of {p * m}")
    if frames % tp:
        pixels = torch.cat([pixels, pixels[-1:].expand(tp - frames % tp, -1, -1, -1)])
    grid_t, grid_h, grid_w = pixels.shape[0] // tp, height // p, width // p
    patches = pixels.reshape(grid_t, tp, channels, grid_h // m, m, p, grid_w // m, m, p)
    patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return patches.reshape(grid_t * grid_h * grid_w, channels * tp * p * p), (grid_t, grid_h, grid_w)
