"""Small pieces every host repeats: checking what `ingest` receives, and peak-memory bookkeeping.

One place so the four hosts reject bad input with the same one-line message and report memory alike.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch


def check_ingest(frames: torch.Tensor, timestamps: Sequence[float] = ()) -> None:
    """`ingest` takes uint8 RGB frames [F, H, W, 3] and, when given, one timestamp per frame."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 [F, H, W, 3] RGB, got {tuple(frames.shape)} {frames.dtype}")
    if len(timestamps) and len(timestamps) != frames.shape[0]:
        raise ValueError(f"ingest got {frames.shape[0]} frames but {len(timestamps)} timestamps")


def reset_peak_memory(device: torch.device) -> None:
    """Start a new video's peak-memory window (CUDA only)."""
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> Optional[float]:
    """Peak allocated device memory since the last reset, in MiB (None off CUDA)."""
    return torch.cuda.max_memory_allocated(device) / 2**20 if torch.device(device).type == "cuda" else None
