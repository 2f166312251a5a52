"""StreamForest's fixed sin-cos position embeddings, added to every frame's vision tokens before memory.

Channels are split in quarters: the first quarter carries the frame's temporal position (1-D sin-cos of
the frame index, over a window of 512 frames that repeats beyond 512), the last three quarters carry
the token's spatial position on the g x g patch grid (2-D sin-cos: half of them encode the column,
half the row). No weights: the tables are recomputed from the sizes. Layout as released
(projector_FSTW_PEMF: MVD/MoCo-v3 style [sin | cos] halves, base 10000).
"""

from __future__ import annotations

import torch

TEMPORAL_WINDOW = 512


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """[M] positions -> [M, dim]: [sin(p·w_i) | cos(p·w_i)], w_i = 10000^(-i / (dim/2))."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even width, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    angles = positions.double().reshape(-1, 1) * omega[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def spatial_embedding(channels: int, grid: int) -> torch.Tensor:
    """[grid*grid, channels]: zeros in the first quarter, 2-D sin-cos (column half, row half) after it."""
    if channels % 4:
        raise ValueError(f"StreamForest position embeddings need channels divisible by 4, got {channels}")
    spatial = channels // 4 * 3
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    table = torch.cat([sincos_1d(spatial // 2, cols.reshape(-1)), sincos_1d(spatial // 2, rows.reshape(-1))], dim=1)
    return torch.cat([torch.zeros(grid * grid, channels - spatial), table], dim=1)


def temporal_embedding(channels: int, frame_index: int) -> torch.Tensor:
    """[channels]: 1-D sin-cos of (frame_index mod 512) in the first quarter, zeros after it."""
    temporal = channels // 4
    table = sincos_1d(temporal, torch.tensor([frame_index % TEMPORAL_WINDOW]))[0]
    return torch.cat([table, torch.zeros(channels - temporal)])


class FramePositions:
    """Adds the spatial table and each frame's temporal row to [F, grid*grid, C] features."""

    def __init__(self, channels: int, grid: int, device: torch.device, dtype: torch.dtype):
        self.channels, self.device, self.dtype = channels, device, dtype
        # cast once to the host dtype: the per-frame `.to(features.dtype)` below is then a no-op (same values)
        self.spatial = spatial_embedding(channels, grid).to(device, dtype)
        self.temporal = torch.stack([temporal_embedding(channels, t) for t in range(TEMPORAL_WINDOW)]).to(device, dtype)

    def __call__(self, features: torch.Tensor, first_index: int) -> torch.Tensor:
        """`features` of frames first_index, first_index + 1, ... of the stream."""
        index = (torch.arange(features.shape[0], device=self.device) + first_index) % TEMPORAL_WINDOW
        # upstream adds the tables in the features' dtype
        return features + self.spatial.to(features.dtype)[None] + self.temporal[index].to(features.dtype)[:, None]
