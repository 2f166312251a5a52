"""One measured row of the harness, and the shared per-run context handed to every case.

A row keeps every raw sample (one value per timed repeat) so results.json can be re-analysed; the
summary statistics, the baseline it compares with, the FLOP-model fraction and the efficiency are
filled in beside it. Comparisons use medians (robust to DVFS/launch jitter).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import torch

from speed_benchmark.config import SpeedConfig
from speed_benchmark.models import ModelSpec
from speed_benchmark.timing import summarize


@dataclass
class Row:
    """A timed variant.

    Attributes:
        case: "vit", "multistream", "prefill", "pruner", "e2e" or "long" (answers after a long stream).
        name: unique label within the case, e.g. "stc graph N=4".
        method: "baseline" or "stc".
        mode: "eager", "graph" or "-".
        params: the knobs of this row (N, r, k, S, frames_per_chunk, frames ...).
        unit: "ms/frame", "ms" or "frames/s".
        samples: one value per timed repeat, in `unit`.
        stats: summary of `samples` (n, min, median, p90, mean, std).
        higher_is_better: True for throughput rows.
        baseline: name of the baseline row (same case) this row is compared with, if any.
        measured_fraction: STC cost / baseline cost from medians (time ratio; for throughput the
            inverse ratio, so < 1 always means STC is cheaper).
        theory_fraction: FLOP-model fraction for this row (F(N, r) or the pre-fill FLOP ratio).
        efficiency: theory_fraction / measured_fraction (1.0 = the FLOP saving fully realised).
        extra: per-frame samples, reference/selective split, cacher counters, peak memory, host stage
            timings, answer latency, the roofline floor ("floor": speed_benchmark/roofline.py) ...
    """

    case: str
    name: str
    method: str
    mode: str
    params: dict
    unit: str
    samples: list
    stats: dict = field(default_factory=dict)
    higher_is_better: bool = False
    baseline: Optional[str] = None
    measured_fraction: Optional[float] = None
    theory_fraction: Optional[float] = None
    efficiency: Optional[float] = None
    extra: dict = field(default_factory=dict)

    def finalize(self) -> "Row":
        self.stats = summarize(self.samples).to_dict()
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def stage_ms(row: Row, key: str, per_frame: bool = True) -> Optional[float]:
    """Median over the row's passes of a host stage time (`extra.host_timings`: a top-level StageTimings
    field or one of its `extra`), per ingested frame unless per_frame=False; None if no pass has it."""
    values = []
    for t in row.extra.get("host_timings", []):
        value = t.get(key, t.get("extra", {}).get(key))
        if value is not None and t.get("frames"):
            values.append(value / t["frames"] if per_frame else value)
    return statistics.median(values) if values else None


def compare(row: Row, base: Row, theory: Optional[float]) -> None:
    """Fill row.baseline / measured_fraction / theory_fraction / efficiency against `base`."""
    row.baseline = base.name
    a, b = row.stats["median"], base.stats["median"]
    measured = (b / a) if row.higher_is_better else (a / b)
    row.measured_fraction = measured
    row.theory_fraction = theory
    row.efficiency = (theory / measured) if (theory is not None and measured > 0) else None


@dataclass
class RunContext:
    """What every case needs: settings, sizes, device/dtype, and where notes and skips go."""

    cfg: SpeedConfig
    spec: ModelSpec
    device: torch.device
    dtype: torch.dtype
    notes: list = field(default_factory=list)  # human-readable remarks for the table footer
    skipped: list = field(default_factory=list)  # {"case", "variant", "reason"}
    shared: dict = field(default_factory=dict)  # objects reused across cases (towers, handles)
    failures: list = field(default_factory=list)  # names of cases that crashed (reason in `skipped`)

    def skip(self, case: str, variant: str, reason: str) -> None:
        entry = {"case": case, "variant": variant, "reason": reason}
        if entry not in self.skipped:
            self.skipped.append(entry)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def info(self) -> dict[str, Any]:
        return {"vit_tokens": self.spec.vit_tokens, "frame_size": self.spec.frame_size, "family": self.spec.family}
