"""Roofline floors: how fast each row COULD be on this GPU, measured in the same run.

    peaks = measure_peaks(device, dtype)     # bf16 GEMM FLOP/s and copy bandwidth, this GPU, now (None on CPU)
    annotate(rows, ctx, peaks)               # row.extra["floor"] = {floor, x_floor, bound, flops, bytes}

Why: "x base" says how much STC saves against the baseline, not whether either is near what the GPU can
do. The floor of one call is max(FLOPs / peak FLOP/s, bytes / bandwidth): FLOPs from the FLOP model
(`stc.flops` via `speed_benchmark.flops`), bytes = the weights the call must read once (activations and
KV reads are left out, so the floor stays a lower bound). A row's floor sums its calls, in the row's
unit (ms per frame, ms, or frames/s); `x floor` = measured cost / floor cost (>= 1; 1 = at the roofline).
Peaks are measured, not taken from a datasheet: a large square GEMM in the run's dtype, and a
device-to-device copy (read + write bytes). Rows without a work model (pruner, long-stream answers) and
CPU runs get None ("n/a").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import torch

from frameworks.common.timing import EventTimer
from speed_benchmark import flops
from speed_benchmark.case_vit import vit_shape
from speed_benchmark.records import Row, RunContext


@dataclass(frozen=True)
class Peaks:
    """Measured device ceilings: FLOP/s of a dense GEMM in the run's dtype, bytes/s of a copy."""

    flops_per_s: float
    bytes_per_s: float
    gemm_size: int
    copy_bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


def measure_peaks(device: torch.device, dtype: torch.dtype, gemm_size: int = 8192, copy_mib: int = 1024,
                  repeats: int = 10) -> Optional[Peaks]:
    """Best of `repeats` for an n x n x n GEMM and a `copy_mib` MiB device copy; None on CPU."""
    if torch.device(device).type != "cuda":
        return None
    timer = EventTimer(device)
    a = torch.randn(gemm_size, gemm_size, device=device, dtype=dtype)
    b = torch.randn(gemm_size, gemm_size, device=device, dtype=dtype)
    src = torch.empty(copy_mib * 2**20, device=device, dtype=torch.uint8)
    dst = torch.empty_like(src)
    for _ in range(2):  # warm-up: cuBLAS heuristics, clocks
        torch.matmul(a, b)
        dst.copy_(src)
    for _ in range(repeats):
        timer.call(lambda: torch.matmul(a, b), "gemm")
        timer.call(lambda: dst.copy_(src), "copy")
    gemm_ms, copy_ms = min(timer.samples("gemm")), min(timer.samples("copy"))
    del a, b, src, dst
    return Peaks(2 * gemm_size**3 / (gemm_ms / 1e3), 2 * copy_mib * 2**20 / (copy_ms / 1e3), gemm_size,
                 copy_mib * 2**20)


class _Work:
    """The calls of one row: (FLOPs, bytes, how many such calls). The floor of a call is
    max(FLOPs / peak, bytes / bandwidth); a row's floor is the sum over its calls."""

    def __init__(self):
        self.calls: list[tuple[float, float, float]] = []

    def call(self, flop_count: float, byte_count: float, times: float = 1) -> None:
        self.calls.append((flop_count, byte_count, times))

    @property
    def flops(self) -> float:
        return sum(f * n for f, _, n in self.calls)

    @property
    def bytes(self) -> float:
        return sum(b * n for _, b, n in self.calls)

    def seconds(self, peaks: Peaks) -> tuple[float, str]:
        """(floor in seconds, "compute" or "memory": which term dominates the sum)."""
        compute = [f / peaks.flops_per_s * n for f, _, n in self.calls]
        memory = [b / peaks.bytes_per_s * n for _, b, n in self.calls]
        return sum(map(max, compute, memory)), "compute" if sum(compute) >= sum(memory) else "memory"


def _vit_model(ctx: RunContext):
    """(FLOPs of a dense frame, FLOPs of a selective frame at r, weight bytes of the tower)."""
    shape = vit_shape(ctx)
    element = torch.empty((), dtype=ctx.dtype).element_size()
    dense = shape.layers * flops.vit_layer_flops_full(shape)
    selective = dense * flops.f_sel(shape, ctx.cfg.stc.update_ratio, exact_k=True)
    return dense, selective, shape.layers * (4 * shape.d**2 + 2 * shape.d * shape.m) * element


def _llm_weight_bytes(ctx: RunContext) -> float:
    shape = flops.llm_shape_from_config(ctx.spec.text_config)
    return shape.layers * shape.linear_flops_per_token / 2 * torch.empty((), dtype=ctx.dtype).element_size()


def _vit_stream(work: _Work, ctx: RunContext, frames: int, interval: Optional[int], batch: int = 1) -> None:
    """`frames` calls of `batch` frames each: one reference every `interval` calls (None = all dense)."""
    dense, selective, weights = _vit_model(ctx)
    refs = frames if interval is None else math.ceil(frames / interval)
    work.call(batch * dense, weights, refs)
    work.call(batch * selective, weights, frames - refs)


def _vit_chunks(work: _Work, ctx: RunContext, frames: int, chunk: int, interval: Optional[int],
                update_ratio: Optional[float]) -> None:
    """ceil(frames / chunk) calls of `chunk` frames mixing both kinds: each call does the stream's
    average FLOP fraction F(N, r) of a dense call (None = all dense) and reads the weights once."""
    dense, _, weights = _vit_model(ctx)
    fraction = 1.0 if interval is None else flops.vit_stream_fraction(vit_shape(ctx), interval, update_ratio, frames)
    work.call(chunk * dense * fraction, weights, math.ceil(frames / chunk))


def _prefill_stream(work: _Work, ctx: RunContext, frames: int, k: int, chunk: int, context: int) -> None:
    shape, weights = flops.llm_shape_from_config(ctx.spec.text_config), _llm_weight_bytes(ctx)
    left = frames
    while left > 0:
        n = min(chunk, left) * k
        work.call(flops.prefill_flops(shape, n, context), weights)
        context, left = context + n, left - min(chunk, left)


def _row_work(row: Row, ctx: RunContext) -> Optional[tuple[_Work, float]]:
    """(work of the row, how many units one sample covers) or None when the row has no work model."""
    work, p = _Work(), row.params
    if row.case == "vit" and p.get("frames_per_call", 1) > 1:  # calls of c frames mixing both kinds
        _vit_chunks(work, ctx, p["frames"], p["frames_per_call"], p.get("N"), p.get("r"))
        return work, p["frames"]
    if row.case == "vit":
        _vit_stream(work, ctx, p["frames"], p.get("N"))
        return work, p["frames"]
    if row.case == "multistream":
        _vit_stream(work, ctx, p["frames"], p.get("N"), batch=p["S"])
        return work, p["frames"] * p["S"]
    if row.case == "prefill":
        _prefill_stream(work, ctx, p["frames"], p["k"], p["frames_per_chunk"], p["prompt_tokens"])
        return work, 1
    if row.case == "e2e":
        chunk, frames = p["frames_per_chunk"], p["frames"]
        _vit_chunks(work, ctx, frames, chunk, p.get("N"), p.get("r"))
        init = int((row.extra.get("host_timings") or [{}])[-1].get("extra", {}).get("init_tokens", 0))
        _prefill_stream(work, ctx, frames, p.get("k", ctx.cfg.preset.llm_tokens_per_frame), chunk, init)
        return work, frames
    return None


def annotate(rows: list[Row], ctx: RunContext, peaks: Optional[Peaks]) -> None:
    """Set row.extra["floor"]: the row's FLOPs and weight bytes per sample, and with measured peaks the
    floor in the row's unit, x floor and the binding term (None for rows without a work model)."""
    for row in rows:
        model = _row_work(row, ctx)
        if model is None:
            row.extra["floor"] = None
            continue
        work, units = model
        entry = {"flops": work.flops, "bytes": work.bytes, "floor": None, "x_floor": None, "bound": None}
        if peaks is not None:
            seconds, bound = work.seconds(peaks)
            floor = units / seconds if row.higher_is_better else seconds * 1e3 / units
            measured = row.stats["median"]
            entry.update(floor=floor, x_floor=floor / measured if row.higher_is_better else measured / floor, bound=bound)
        row.extra["floor"] = entry
