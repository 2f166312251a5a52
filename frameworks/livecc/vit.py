"""Call metadata of the Qwen2-VL vision tower, precomputed once per grid so a tower call never syncs.

The stock tower derives `cu_seqlens` (attention segments: one per 2-frame group) and the 2D rotary
position ids from `grid_thw` inside every call (`repeat_interleave`, `.tolist()`), and its SDPA path
splits the sequence with `cu_seqlens.tolist()`. Both block CUDA-graph capture and cost a host sync per
call. transformers 5 lets callers pass them precomputed (`transformers.vision_utils`: a `cu_seqlens` /
`position_ids` keyword is popped instead of computed), so the host computes them with the stock
functions once per (groups, h, w) and passes:
  * `grid_thw` and `cu_seqlens` on the CPU (the SDPA path only turns them into Python split sizes), or
    `cu_seqlens` on the device plus `max_seqlen` when flash-attention is requested;
  * `position_ids` on the device.
The result is the stock computation (tests compare it with a plain `visual(values, grid_thw=...)` call).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.utils.generic import is_flash_attention_requested
from transformers.vision_utils import get_vision_cu_seqlens, get_vision_position_ids


class VisionCallArgs:
    """Per-tower cache: (groups, grid_h, grid_w) -> keyword arguments of one tower call."""

    def __init__(self, visual: nn.Module, device: torch.device):
        self.visual, self.device = visual, torch.device(device)
        self._cache: dict[tuple[int, int, int], dict] = {}

    def __call__(self, groups: int, grid_h: int, grid_w: int) -> dict:
        key = (groups, grid_h, grid_w)
        if key not in self._cache:
            grid = torch.tensor([[groups, grid_h, grid_w]])
            cu_seqlens = get_vision_cu_seqlens(grid)
            args = dict(grid_thw=grid, position_ids=get_vision_position_ids(grid, self.visual.spatial_merge_size).to(self.device))
            if is_flash_attention_requested(self.visual.config):
                args.update(cu_seqlens=cu_seqlens.to(self.device), max_seqlen=grid_h * grid_w)
            else:
                args.update(cu_seqlens=cu_seqlens)
            self._cache[key] = args
        return dict(self._cache[key])
