"""Optional `profile=true`: one torch.profiler pass over the F-frame stream per ViT variant, to explain a
missed target (launch gaps, gathers/scatters, allocations) instead of guessing.

Writes `profile/<variant>.txt` (top ops by device time, or CPU time on CPU, with call counts) and
`profile/<variant>.json.gz` (gzipped Chrome trace: open in chrome://tracing or Perfetto). The summary written into
results.json says, per variant, how much of the wall time the device was busy and how many kernels
were launched per frame: at B=1 a low busy share means launch-bound.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from speed_benchmark.timing import synchronize


def _self_device_us(evt) -> float:
    for name in ("self_device_time_total", "self_cuda_time_total"):
        if hasattr(evt, name):
            return float(getattr(evt, name))
    return 0.0


def device_kernels(events) -> list[dict]:
    """Per device-side event name of `prof.key_averages()` (kernels, memcpy, memset): {"kernel", "calls",
    "us"} (self device time), longest first. Shared by the harness's profile pass and the GPU scripts'
    kernel tables (scripts/gpu/vit_layer_kernels.py, profile_rekv_step.py)."""
    from torch.autograd import DeviceType

    rows = [{"kernel": e.key, "calls": e.count, "us": _self_device_us(e)}
            for e in events if getattr(e, "device_type", None) == DeviceType.CUDA]
    return sorted((r for r in rows if r["us"] > 0), key=lambda r: -r["us"])


def _kernels(events) -> tuple[int, float]:
    """(kernel launches, busy microseconds) of the device-side events."""
    rows = device_kernels(events)
    return sum(r["calls"] for r in rows), sum(r["us"] for r in rows)


def profile_variants(variants, frames: torch.Tensor, device: torch.device, out_dir: Path, run_stream) -> dict:
    """Profile one pass of each variant; returns {variant: summary} and writes the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    summary = {}
    for v in variants:
        slug = v.name.replace(" ", "_").replace("=", "")
        with torch.no_grad(), profile(activities=activities, record_shapes=False) as prof:
            run_stream(v)
            synchronize(device)
        sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
        (out_dir / f"{slug}.txt").write_text(prof.key_averages().table(sort_by=sort, row_limit=30))
        prof.export_chrome_trace(str(out_dir / f"{slug}.json.gz"))
        kernels, busy_us = _kernels(prof.key_averages())
        summary[v.name] = {"kernels_per_frame": kernels / frames.shape[0] if kernels else None,
                           "device_busy_ms_per_frame": busy_us / 1e3 / frames.shape[0] if busy_us else None,
                           "table": f"profile/{slug}.txt", "trace": f"profile/{slug}.json.gz"}
    return summary
