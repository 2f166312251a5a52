"""StreamForest host settings (one frozen dataclass; `configs/framework/streamforest.yaml` maps onto it 1:1).

Defaults follow the released evaluation (frameworks-benchmarks.md §A2.3): at most 2048 frames per
question, the `short_online_v2` time message, the tower run on 128 frames per call, greedy decoding.
`protocol` picks between our streaming reuse ("incremental": the memory forest is kept per video and
only new frames are encoded) and the released protocol ("reread": every question re-encodes frames
0..t and rebuilds the memory from scratch, maintaining it once at the end, as lmms-eval does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from frameworks.common.settings import check_settings, settings_from_mapping

PROTOCOLS = ("incremental", "reread")
PLACEMENTS = ("before_memory", "before_llm")
TIME_MESSAGES = ("short_online_v2", "none")
SYSTEM_PREFIX = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
ASSISTANT_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"


@dataclass(frozen=True)
class StreamForestConfig:
    """Args:
    model_path: local folder of MCG-NJU/StreamForest-Qwen2-7B (released LLaVA layout); None = random weights.
    random_weights: accepted for the evaluation entry point's rule that `model_path: null` runs need
        `framework.random_weights=true`; the host itself builds random weights whenever model_path is None.
    preset: released size for random weights ("7b" or "tiny").
    dtype, device, seed: as for every host.
    protocol: "incremental" (memory kept per video) | "reread" (released: re-encode 0..t per question).
    max_frames: "reread" only: frames per question are uniformly thinned to at most this many (2048).
    vit_batch: frames per vision-tower call (128 as released; 1 = one call per frame).
    time_message: "short_online_v2" (released) | "none".
    pruner_placement: where TOKENS-stage compression runs: "before_memory" (on each frame's tower tokens)
        or "before_llm" (on every frame of the memory output, per question).
    memory: overrides of `MemorySettings` fields (e.g. {"quota": 4096}); empty = the preset's constants.
    """

    name: str = "streamforest"
    model_path: Optional[str] = None
    random_weights: bool = False
    preset: str = "7b"
    dtype: str = "bfloat16"
    device: str = "auto"
    seed: int = 0
    protocol: str = "incremental"
    max_frames: int = 2048
    vit_batch: int = 128
    time_message: str = "short_online_v2"
    pruner_placement: str = "before_memory"
    memory: Optional[Mapping[str, Any]] = None

    def __post_init__(self):
        checks = [
            ("protocol", self.protocol in PROTOCOLS, f"must be one of {PROTOCOLS}"),
            ("pruner_placement", self.pruner_placement in PLACEMENTS, f"must be one of {PLACEMENTS}"),
            ("time_message", self.time_message in TIME_MESSAGES, f"must be one of {TIME_MESSAGES}"),
            ("max_frames", isinstance(self.max_frames, int) and self.max_frames >= 1, "must be an integer >= 1"),
            ("vit_batch", isinstance(self.vit_batch, int) and self.vit_batch >= 1, "must be an integer >= 1"),
        ]
        check_settings(self, "StreamForest", checks)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> "StreamForestConfig":
        """Build from a plain mapping; unknown keys are one error naming them."""
        return settings_from_mapping(cls, mapping, "StreamForest", ignore=())
