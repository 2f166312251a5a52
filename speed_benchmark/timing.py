"""Summary statistics of timed samples, device helpers (sync, peak memory) and the run environment.

The timer itself is `frameworks.common.timing.EventTimer`, shared with the hosts (one timer, one
method: CUDA events per call, one synchronisation per pass).
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


def graph_replay_us(step: Callable[[], object], repeats: int, replays: int, device: torch.device):
    """µs per repeat of `step` run `repeats` times back to back inside ONE CUDA graph (median of `replays`
    replays; a model's layers in one graph, so launch gaps are a graph's) -> (µs, graph). Captured with
    the hosts' protocol (`frameworks.common.cuda_graphs.capture`: warm-ups on a side stream). On CPU:
    wall time of one eager pass after 3 warm-ups, and no graph. Used by the GPU kernel scripts
    (vit_layer_kernels.py, split_attention_bench.py)."""
    from frameworks.common.cuda_graphs import capture
    from frameworks.common.timing import EventTimer

    if device.type != "cuda":
        for _ in range(3):
            step()
        start = time.perf_counter()
        for _ in range(repeats):
            step()
        return (time.perf_counter() - start) * 1e6 / repeats, None
    graph, _ = capture(lambda: [step() for _ in range(repeats)], lambda: None, device, warmups=3)
    timer = EventTimer(device)
    for _ in range(replays):
        timer.call(graph.replay)
    return summarize(timer.finish()).median * 1e3 / repeats, graph
