"""Timing primitives: per-call CUDA events (or perf_counter on CPU), summary statistics, environment.

Why events per call and one sync per repeat: a streaming host never synchronises between frames, so
the harness must not either (a sync per frame would hide launch overlap and inflate eager numbers).
Events give the GPU-timeline time of each call; `Recorder.finish()` syncs once and converts.
"""

from __future__ import annotations

import math
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

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


class Recorder:
    """Times a sequence of calls on one device without synchronising between them.

        rec = Recorder(device)
        for x in frames: rec.call(lambda: tower(pixel_values=x))
        per_call_ms = rec.finish()        # one sync; list of ms per call
    """

    def __init__(self, device: torch.device):
        self.cuda = torch.device(device).type == "cuda"
        self._events: list = []
        self._cpu: list[float] = []

    def call(self, fn: Callable[[], object]) -> object:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn()
            end.record()
            self._events.append((start, end))
            return out
        t0 = time.perf_counter()
        out = fn()
        self._cpu.append((time.perf_counter() - t0) * 1e3)
        return out

    def finish(self) -> list[float]:
        if self.cuda:
            torch.cuda.synchronize()
            out = [s.elapsed_time(e) for s, e in self._events]
        else:
            out = list(self._cpu)
        self._events, self._cpu = [], []
        return out


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
