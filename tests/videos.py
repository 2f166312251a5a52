"""Synthetic uint8 streams for host tests: one random image drifting a little per frame, so frames are
temporally redundant (what STC exploits) yet never identical."""

import torch


def drifting_video(count: int, height: int, width: int, seed: int = 0, drift: float = 6.0) -> torch.Tensor:
    """uint8 [count, height, width, 3]."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 256, (height, width, 3), generator=generator).float()
    frames = []
    for _ in range(count):
        frames.append(base.clamp(0, 255).to(torch.uint8))
        base = base + drift * torch.randn(height, width, 3, generator=generator)
    return torch.stack(frames)
