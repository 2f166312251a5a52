"""The built-in deterministic test host, registered as "toy" (`framework=toy`).

No model: every frame is summarised by its mean intensity and answers follow fixed rules, so the
whole evaluation pipeline (sampling, streaming reuse, prompts, scoring, resume, sharding) runs on CPU
in milliseconds and gives reproducible numbers.

Answer rules (depend only on the frames ingested since the last reset, so a streaming run and a
prefix run give identical answers):
  multiple choice (query.options): option index = floor(mean intensity of the newest frame / 256 * n)
  yes/no prompts (text contains "Yes"): "Yes" if the newest frame's mean > 127 else "No"
  anything else (counting): str(number of frames seen % 4)
Counters (`ingested_frames_total`, `ingest_calls`, `resets`, `answers`) let tests assert that streaming
reuse ingested only new frames. Timings are filled like a real host (ViT = frame summarising).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from frameworks.protocol import Query, StageTimings
from frameworks.registry import register_host
from stc.config import STCConfig

TOKENS_PER_FRAME = 16  # the toy "vision tower" emits a 4x4 grid per frame


@dataclass(frozen=True)
class ToyConfig:
    """Knobs of the toy host (`configs/framework/toy.yaml`).

    Attributes:
        supports_incremental: advertise streaming reuse (False forces the runner's prefix protocol).
        response_style: "letter" ("B") or "rekv" ("B) <option text>", like ReKV after its primer).
        fail_on: raise inside answer() when this substring is in the prompt ("" = never); lets tests
            check that host failures are recorded per item.
    """

    name: str = "toy"
    supports_incremental: bool = True
    response_style: str = "letter"
    fail_on: str = ""

    def __post_init__(self):
        if self.response_style not in ("letter", "rekv"):
            raise ValueError(f"invalid toy setting response_style={self.response_style!r}: 'letter' or 'rekv'")


class ToyHost:
    """Deterministic rule-based StreamingVideoLLM."""

    def __init__(self, config: ToyConfig, stc: STCConfig):
        self.config = config
        self.stc = stc
        self.name = config.name
        self.supports_incremental = config.supports_incremental
        self.ingested_frames_total = 0
        self.ingest_calls = 0
        self.resets = 0
        self.answers = 0
        self._means: list[float] = []
        self._timings = StageTimings()

    def reset(self) -> None:
        self.resets += 1
        self._means = []
        self._timings = StageTimings()

    def ingest(self, frames: torch.Tensor, timestamps: Sequence[float]) -> None:
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"toy host expects uint8 frames [F, H, W, 3], got {tuple(frames.shape)} {frames.dtype}")
        if len(timestamps) != frames.shape[0]:
            raise ValueError(f"{frames.shape[0]} frames but {len(timestamps)} timestamps")
        start = time.perf_counter()
        means = frames.float().mean(dim=(1, 2, 3)).tolist()
        self._timings.vit_ms += 1000 * (time.perf_counter() - start)
        for _ in means:
            self._count_frame()
        self._means.extend(means)
        self.ingested_frames_total += len(means)
        self.ingest_calls += 1

    def _count_frame(self) -> None:
        t = self._timings
        interval = self.stc.cacher.cache_interval if self.stc.cacher else 1
        if t.frames % interval == 0:
            t.vit_reference_frames += 1
        else:
            t.vit_selective_frames += 1
        kept = min(self.stc.pruner.tokens_per_frame, TOKENS_PER_FRAME) if self.stc.pruner else TOKENS_PER_FRAME
        t.frames += 1
        t.visual_tokens_in += TOKENS_PER_FRAME
        t.visual_tokens_kept += kept

    def answer(self, query: Query) -> str:
        if self.config.fail_on and self.config.fail_on in query.prompt:
            raise RuntimeError(f"toy host: injected failure (prompt contains {self.config.fail_on!r})")
        if not self._means:
            raise RuntimeError("toy host: answer() before any frame was ingested")
        self.answers += 1
        last = self._means[-1]
        if query.options:
            index = min(len(query.options) - 1, int(last / 256.0 * len(query.options)))
            letter = "ABCDEFGHIJ"[index]
            return f"{letter}) {query.options[index]}" if self.config.response_style == "rekv" else letter
        if "Yes" in query.prompt:
            return "Yes" if last > 127 else "No"
        return str(len(self._means) % 4)

    @property
    def timings(self) -> StageTimings:
        return self._timings


@register_host("toy")
def build_toy(config: Mapping[str, Any], stc: STCConfig) -> ToyHost:
    known = set(ToyConfig.__dataclass_fields__)
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"unknown toy host setting(s) {sorted(unknown)}; known: {sorted(known)}")
    return ToyHost(ToyConfig(**dict(config)), stc)
