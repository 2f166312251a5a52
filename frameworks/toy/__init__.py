"""The built-in deterministic test host, registered as "toy" (`framework=toy`).

No language model: every frame is summarised by its mean intensity and answers follow fixed rules, so
the whole evaluation pipeline (sampling, streaming reuse, prompts, scoring, resume, sharding) runs on
CPU in milliseconds and gives reproducible numbers. The compression seam is real, though: frames go
through a tiny seeded SigLIP tower (32 px, 16 tokens per frame) with the configured VISION methods
attached, and its tokens through the TOKENS methods, so `framework=toy compression=<any method>`
exercises every registered method end to end (counts in `timings`), and answers never depend on it.

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

from frameworks.common.compression import HostCompression
from frameworks.common.vision_side import SIDE_FIELDS, tower_side
from frameworks.protocol import Query, StageTimings
from stc.compression import CompressionSpec, TokenSide

IMAGE_SIZE, PATCH_SIZE = 32, 8
TOKENS_PER_FRAME = (IMAGE_SIZE // PATCH_SIZE) ** 2  # the toy vision tower emits a 4x4 grid per frame


def toy_tower(seed: int = 0):
    """A 2-layer SigLIP tower (width 32) with seeded random weights: the toy host's encoder."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    config = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                image_size=IMAGE_SIZE, patch_size=PATCH_SIZE)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return SiglipVisionModel(config).eval()


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

    def __init__(self, config: ToyConfig, compression: CompressionSpec | None = None):
        self.config = config
        self.compression = HostCompression(compression, TOKENS_PER_FRAME, host="toy", tower_tokens=TOKENS_PER_FRAME)
        self.tower = None
        if self.compression:
            self.tower = toy_tower()
            self.compression.attach(self.tower)
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
        self.compression.reset()

    def ingest(self, frames: torch.Tensor, timestamps: Sequence[float]) -> None:
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"toy host expects uint8 frames [F, H, W, 3], got {tuple(frames.shape)} {frames.dtype}")
        if len(timestamps) != frames.shape[0]:
            raise ValueError(f"{frames.shape[0]} frames but {len(timestamps)} timestamps")
        start = time.perf_counter()
        means = frames.float().mean(dim=(1, 2, 3)).tolist()
        kept = self._encode(frames) if self.compression else TOKENS_PER_FRAME * len(means)
        self._timings.vit_ms += 1000 * (time.perf_counter() - start)
        self._timings.frames += len(means)
        self._timings.visual_tokens_in += TOKENS_PER_FRAME * len(means)
        self._timings.visual_tokens_kept += kept
        self._timings.vit_reference_frames, self._timings.vit_selective_frames = self.compression.frame_kinds()
        self._timings.extra["compression"] = self.compression.stats()
        self._means.extend(means)
        self.ingested_frames_total += len(means)
        self.ingest_calls += 1

    @torch.no_grad()
    def _encode(self, frames: torch.Tensor) -> int:
        """Frames through the tower (one frame per call, as a streaming host does) and the TOKENS
        methods; returns the number of tokens kept."""
        pixels = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0,
                                                 size=(IMAGE_SIZE, IMAGE_SIZE), mode="area")
        kept = 0
        wants_side = bool(self.compression.requires & set(SIDE_FIELDS))
        grid = None if self.compression.reduces_in_tower else (4, 4)
        for offset, frame in enumerate(pixels):
            outputs = self.tower(pixel_values=frame[None], output_hidden_states=wants_side)
            tokens = outputs.last_hidden_state
            extra = tower_side(self.tower, outputs.hidden_states, -1) if wants_side else {}
            side = TokenSide(grid=grid, frame_offset=self._timings.frames + offset, **extra)
            tokens, _ = self.compression.compress_tokens(tokens, side)
            kept += sum(t.shape[0] for t in tokens) if isinstance(tokens, list) else tokens.shape[1]
        return kept

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


def build_toy(config: Mapping[str, Any], compression: CompressionSpec | None = None) -> ToyHost:
    known = set(ToyConfig.__dataclass_fields__)
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"unknown toy host setting(s) {sorted(unknown)}; known: {sorted(known)}")
    return ToyHost(ToyConfig(**dict(config)), compression)
