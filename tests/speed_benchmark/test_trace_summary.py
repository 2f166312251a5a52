"""speed_benchmark/trace_summary.py on a synthetic Chrome trace: per-frame kernel time, the gaps between
device events summed per kernel pair, per-frame cuts at a marker kernel, and a clear error on a bad file."""

import gzip
import json

from speed_benchmark.trace_summary import gap_totals, kernel_totals, main, per_frame, summarize, device_events


def _trace(frames: int = 2) -> dict:
    """Each frame: conv (10 µs) -> memset (1) -> 5 µs wait -> attn (20) -> 1 µs -> gemm (30); frames 100 µs apart."""
    events, t = [], 0.0
    for f in range(frames):
        t = f * 100.0
        for name, dur, gap in (("conv_nchwToNhwc", 10, 0), ("Memset", 1, 0), ("attn", 20, 5), ("gemm", 30, 1)):
            t += gap
            events.append({"cat": "gpu_memset" if name == "Memset" else "kernel", "name": name, "ts": t, "dur": dur})
            t += dur
    events.append({"cat": "cpu_op", "name": "aten::mm", "ts": 0.0, "dur": 500})  # not a device event
    return {"traceEvents": events[::-1]}  # out of order on purpose


def test_totals_gaps_and_frames():
    events = device_events(_trace())
    assert [e["name"] for e in events[:4]] == ["conv_nchwToNhwc", "Memset", "attn", "gemm"]
    totals = {name: (us, n) for name, us, n in kernel_totals(events, frames=2)}
    assert totals["gemm"] == (30.0, 1.0) and totals["Memset"] == (1.0, 1.0)
    gaps = {(a, b): (us, n) for a, b, us, n in gap_totals(events, frames=2)}
    assert gaps[("Memset", "attn")] == (5.0, 1.0)
    assert gaps[("attn", "gemm")] == (1.0, 1.0)
    assert gaps[("gemm", "conv_nchwToNhwc")] == (33.0 / 2, 0.5)  # frame 1 starts at 100, frame 0 ends at 67: once
    assert per_frame(events, "nchwToNhwc") == [(4, 61.0, 67.0), (4, 61.0, 67.0)]
    text = summarize(_trace(), frames=2, marker="nchwToNhwc")
    assert "busy 61.0 µs/frame" in text and "| 5.0 | 1.00 | `Memset` | `attn` |" in text


def test_command_line(tmp_path, capsys):
    path = tmp_path / "t.json.gz"
    with gzip.open(path, "wt") as handle:
        json.dump(_trace(3), handle)
    assert main([str(path), "--frames", "3", "--frame-marker", "nchwToNhwc"]) == 0
    assert "| 2 | 4 | 61 | 67 |" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main([str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err
