"""Summary statistics of timed samples, device helpers (sync, peak memory) and the run environment.

The timer itself is `frameworks.common.timing.EventTimer`, shared with the hosts (one timer, one
method: CUDA events per call, one synchronisation per pass).
"""

from __future__ import annotations

import math
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass
from typing import Sequence

import torch


@dataclass
class Stats:
    """Summary of a list of samples (same unit as the samples)."""

    n: int
    min: float
    median: float
    p90: float
    mean: float
    std: float

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(samples: Sequence[float]) -> Stats:
    """min / median / p90 (nearest-rank) / mean / std of `samples` (at least one)."""
    if not samples:
        raise ValueError("summarize: no samples")
    ordered = sorted(samples)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]  # nearest-rank percentile
    std = statistics.pstdev(ordered) if len(ordered) > 1 else 0.0
    return Stats(len(ordered), ordered[0], statistics.median(ordered), p90, statistics.fmean(ordered), std)


def synchronize(device: torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def reset_peak_memory(device: torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb(device: torch.device) -> float | None:
    """Peak allocated CUDA memory since the last reset, MiB (None on CPU)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return None


def _driver_version() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: torch.device, dtype: torch.dtype, attn_implementation: str) -> dict:
    """What a reader needs to judge a number: hardware, driver, library versions, dtype, attention."""
    import transformers

    dev = torch.device(device)
    info = {
        "device_type": dev.type,
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({platform.processor() or platform.machine()})",
        "driver": _driver_version() if dev.type == "cuda" else None,
        "cuda": torch.version.cuda if dev.type == "cuda" else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "dtype": str(dtype).replace("torch.", ""),
        "attention": attn_implementation,
        "cpu_threads": torch.get_num_threads(),
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
        info["sdpa_flash"] = torch.backends.cuda.flash_sdp_enabled()
    return info
