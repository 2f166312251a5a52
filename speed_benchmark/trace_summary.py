"""Where a profiled pass's device time goes, from the Chrome trace that `profile=true` writes.

    python -m speed_benchmark.trace_summary <out_dir>/profile/stc_graph+fused_N4.json.gz --frames 16 \
        --frame-marker nchwToNhwc --every 2

Why: the harness's kernel table (`profile/<variant>.txt`) sums device time per op, which hides the time
BETWEEN kernels, and inside a CUDA graph that time is the whole difference between a frame's kernels and
its wall time. This reads the device events (kernels, memcpy, memset) in time order and prints:
- per kernel name: µs and calls per frame, longest first;
- the gaps between consecutive device events, summed per (previous, next) kernel pair: a pair with a
  large total is a launch that waits (e.g. a kernel that always starts microseconds after a memset);
- with `--frame-marker`, per frame: kernels, busy µs and span µs, cutting the trace at every `--every`-th
  event whose name contains the marker (a kernel that runs a fixed number of times per frame).
Numbers are under the profiler, which adds some time between kernels; compare rows of one trace.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections import defaultdict
from pathlib import Path

DEVICE_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")


def device_events(trace: dict) -> list[dict]:
    """The trace's device events, in start-time order."""
    events = [e for e in trace.get("traceEvents", []) if e.get("cat") in DEVICE_CATEGORIES and "dur" in e]
    return sorted(events, key=lambda e: e["ts"])


def kernel_totals(events: list[dict], frames: int, width: int = 90) -> list[tuple[str, float, float]]:
    """(name, µs per frame, calls per frame), longest first."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for e in events:
        totals[e["name"][:width]][0] += e["dur"]
        totals[e["name"][:width]][1] += 1
    return sorted(((k, us / frames, n / frames) for k, (us, n) in totals.items()), key=lambda r: -r[1])


def gap_totals(events: list[dict], frames: int, width: int = 60) -> list[tuple[str, str, float, float]]:
    """(previous kernel, next kernel, µs of gap per frame, occurrences per frame), largest first."""
    gaps: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for before, after in zip(events, events[1:]):
        gap = after["ts"] - (before["ts"] + before["dur"])
        key = (before["name"][:width], after["name"][:width])
        gaps[key][0] += max(gap, 0.0)
        gaps[key][1] += 1
    return sorted(((a, b, us / frames, n / frames) for (a, b), (us, n) in gaps.items()), key=lambda r: -r[2])


def per_frame(events: list[dict], marker: str, every: int = 1) -> list[tuple[int, float, float]]:
    """(kernels, busy µs, span µs) per frame, a frame starting at every `every`-th event named `marker`."""
    starts = [i for i, e in enumerate(events) if marker in e["name"]][::every]
    frames = []
    for lo, hi in zip(starts, starts[1:] + [len(events)]):
        chunk = events[lo:hi]
        span = chunk[-1]["ts"] + chunk[-1]["dur"] - chunk[0]["ts"]
        frames.append((len(chunk), sum(e["dur"] for e in chunk), span))
    return frames


def summarize(trace: dict, frames: int, marker: str | None = None, every: int = 1, top: int = 20) -> str:
    events = device_events(trace)
    if not events:
        return "no device events in this trace (a CPU run, or a profile without CUDA activity)"
    busy = sum(e["dur"] for e in events)
    span = events[-1]["ts"] + events[-1]["dur"] - events[0]["ts"]
    lines = [f"{len(events)} device events over {frames} frame(s): busy {busy / frames:.1f} µs/frame, "
             f"span {span / frames:.1f} µs/frame, between events {(span - busy) / frames:.1f} µs/frame", "",
             "| µs/frame | calls/frame | kernel |", "|---|---|---|"]
    lines += [f"| {us:.1f} | {n:.2f} | `{name}` |" for name, us, n in kernel_totals(events, frames)[:top]]
    lines += ["", "| gap µs/frame | times/frame | previous event | next event |", "|---|---|---|---|"]
    lines += [f"| {us:.1f} | {n:.2f} | `{a}` | `{b}` |" for a, b, us, n in gap_totals(events, frames)[:top]]
    if marker:
        lines += ["", "| frame | kernels | busy µs | span µs |", "|---|---|---|---|"]
        lines += [f"| {i} | {n} | {b:.0f} | {s:.0f} |" for i, (n, b, s) in enumerate(per_frame(events, marker, every))]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trace", help="a profile/<variant>.json.gz (or .json) written by the harness with profile=true")
    p.add_argument("--frames", type=int, default=1, help="frames in the profiled pass (per-frame numbers)")
    p.add_argument("--frame-marker", default=None, help="substring of a kernel name that starts each frame")
    p.add_argument("--every", type=int, default=1, help="the marker kernel runs this many times per frame")
    p.add_argument("--top", type=int, default=20)
    a = p.parse_args(argv)
    path = Path(a.trace)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as handle:
            trace = json.load(handle)
    except (OSError, ValueError) as error:
        print(f"trace_summary: cannot read {path}: {error}", file=sys.stderr)
        return 2
    if a.frames < 1 or a.every < 1:
        print("trace_summary: --frames and --every must be >= 1", file=sys.stderr)
        return 2
    print(summarize(trace, a.frames, a.frame_marker, a.every, a.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
