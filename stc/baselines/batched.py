"""Per-frame selection for all frames of a call at once (shared by the TOKENS baselines).

Hosts hand a TOKENS method 8-128 frames per call; a Python loop over frames costs several small kernel
launches per frame on a GPU. These helpers do one sort / scatter / gather for all frames and never read
a device value on the host (no sync). Ties are broken explicitly: lowest index first (a stable sort),
where torch.topk leaves the order of equal scores unspecified.
"""

from __future__ import annotations

import torch


def top_indices(scores: torch.Tensor, count: int, largest: bool = True) -> torch.Tensor:
    """Indices [F, count] of the `count` largest (or smallest) scores of every row of scores [F, T],
    in raster order; among equal scores at the cut the LOWEST index is kept."""
    return _ranking(scores, largest)[:, :count].sort(dim=1).values


def split_indices(scores: torch.Tensor, count: int, largest: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(`top_indices`, the other indices [F, T - count] in raster order) from ONE ranking sort: a method
    that needs both (VisionZip's dominant and remaining tokens) does not rank twice."""
    order = _ranking(scores, largest)
    return order[:, :count].sort(dim=1).values, order[:, count:].sort(dim=1).values


def _ranking(scores: torch.Tensor, largest: bool) -> torch.Tensor:
    """Per row, all indices from best to worst score; a stable sort, so equal scores keep raster order."""
    return torch.sort(scores, dim=1, descending=largest, stable=True).indices


def complement_indices(picked: torch.Tensor, count: int) -> torch.Tensor:
    """Raster-order indices [F, count - k] of the tokens NOT in picked [F, k] (distinct per row): a
    stable sort of the picked mask puts the unpicked tokens first, in raster order."""
    frames, k = picked.shape
    mask = torch.zeros(frames, count, dtype=torch.uint8, device=picked.device).scatter_(1, picked, 1)
    return torch.sort(mask, dim=1, stable=True).indices[:, :count - k]


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [F, T, ...], index [F, k] -> x[f, index[f]] for every frame: [F, k, ...]. One row copy
    (index_select on the flattened frames: whole rows, faster than gather with an expanded index)."""
    frames, count = x.shape[:2]
    flat = (index + torch.arange(frames, device=index.device)[:, None] * count).reshape(-1)
    return x.reshape(frames * count, *x.shape[2:]).index_select(0, flat).view(*index.shape, *x.shape[2:])


def ranked_mask(scores: torch.Tensor, budgets: torch.Tensor) -> torch.Tensor:
    """Bool mask [F, T]: in row f the budgets[f] SMALLEST scores (lowest index first among equals).
    budgets: [F] integer tensor on the scores' device. One stable sort and one scatter for all rows."""
    frames, count = scores.shape
    order = torch.sort(scores, dim=1, stable=True).indices
    keep = torch.arange(count, device=scores.device)[None, :] < budgets[:, None]
    return torch.zeros(frames, count, dtype=torch.bool, device=scores.device).scatter_(1, order, keep)


def packed_positions(mask: torch.Tensor, total: int) -> torch.Tensor:
    """Flat row-major positions [total] of the True entries of mask [F, T] (exactly `total` of them):
    frame by frame, raster order inside a frame. A stable sort instead of nonzero(), which would make
    the host wait for the device to learn the count."""
    flat = (~mask).reshape(-1).to(torch.uint8)
    return torch.sort(flat, stable=True).indices[:total]
