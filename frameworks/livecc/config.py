"""LiveCC host settings (one frozen dataclass; `configs/framework/livecc.yaml` maps onto it 1:1).

Defaults are the released LiveCC values (frameworks-benchmarks.md §A4): 2 fps, a first turn of 3 s
(6 frames) then one user turn per second (2 frames), the demo's 384·28·28 pixels per frame while
streaming, qwen-vl-utils/livecc-utils budgets for whole clips (100·28·28 min per frame, 24576·28·28 per
video, at most 480 frames), the OVO-Bench answer prefix "The answer is:\n" and the 17 restricted answer
tokens. `from_mapping` accepts a plain dict (what `build_host` passes) and names any unknown or invalid
field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

from frameworks.common.settings import check_settings, settings_from_mapping

PIXELS_28 = 28 * 28
ANSWER_CHOICES = ("No", "Yes", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E")
MODES = ("clip", "streaming")
ANSWER_MODES = ("restricted", "generate")
MROPE_MODES = ("full", "released")


@dataclass(frozen=True)
class LiveCCConfig:
    """Args:
    model_path: local `chenjoya/LiveCC-7B-Instruct` (or -Base) folder; None = random weights of `preset`.
    random_weights: must be true when `model_path` is null (random weights are for latency only).
    preset: Qwen2-VL size for random weights ("7b" or "tiny"; frameworks/common/model_sizes.py).
    dtype / device / seed: as every host ("auto" device = cuda if available).
    mode: "clip" = LiveCC's QA protocol (all frames since reset are one video in one user turn, the
        question after it; OVO-Bench/VideoMME evals), "streaming" = the live commentary loop (one user
        turn per second, KV and ids carried over; the question joins the turn in which it arrives).
    answer_mode: "restricted" = LiveCC's OVO-Bench protocol (no generation: argmax of the next-token
        logits over `answer_choices`), "generate" = greedy decoding of `Query.max_new_tokens`.
    answer_choices: texts whose token (last token of "\\n"+choice, as upstream) competes in restricted mode.
    answer_prefix: assistant text after the question (used when `Query.answer_prefix` is empty).
    fps: frame rate the turn builder assumes (LiveCC: 2); frame i of a turn ends at its timestamp + 1/fps.
    first_turn_frames / turn_frames: frames of the first turn (6 = 3 s) and of each later turn (2 = 1 s).
    min_pixels / max_pixels: per-frame pixel budget of smart_resize while streaming (demo: 384·28·28).
    clip_min_pixels / clip_total_pixels / clip_max_frames: clip mode budgets (qwen-vl-utils as patched
        by livecc-utils): per-frame max = max(min(clip_max_pixels, total/nframes·2), 1.05·min).
    clip_max_pixels: upper per-frame bound in clip mode (livecc-utils VIDEO_MAX_PIXELS).
    system_prompt: the chat template's default system text (first turn only).
    default_query: text of the first streaming turn when no question has arrived (demo default).
    commentary: in streaming mode, generate commentary after every turn (the live loop); False only
        pre-fills the turns (QA benchmarks: cheaper, the answer turn still sees every frame).
    commentary_max_new_tokens / repetition_penalty: per-turn decoding (demo: 16, 1.05; greedy here).
    streaming_eos_base_threshold / streaming_eos_threshold_step: the " ..." logits processor (None = off).
    keep_answers: keep question/answer turns in the stream's history (the demo's video_qa); False crops
        the KV cache back after each answer so every question sees the same stream.
    mrope: "full" = every appended turn gets the M-RoPE indices of one full forward over the whole
        history (training-time layout); "released" = what transformers-4.x `generate` gives appended turns
        under livecc-utils' patch (1-D positions = cache length + the first turn's rope delta).
    """

    model_path: Optional[str] = None
    random_weights: bool = False
    preset: str = "7b"
    dtype: str = "bfloat16"
    device: str = "auto"
    seed: int = 0
    mode: str = "clip"
    answer_mode: str = "restricted"
    answer_choices: Tuple[str, ...] = ANSWER_CHOICES
    answer_prefix: str = "The answer is:\n"
    fps: float = 2.0
    first_turn_frames: int = 6
    turn_frames: int = 2
    min_pixels: int = 100 * PIXELS_28
    max_pixels: int = 384 * PIXELS_28
    clip_min_pixels: int = 100 * PIXELS_28
    clip_max_pixels: int = 24576 * PIXELS_28
    clip_total_pixels: int = 24576 * PIXELS_28
    clip_max_frames: int = 480
    system_prompt: str = "You are a helpful assistant."
    default_query: str = "Please describe the video."
    commentary: bool = False
    commentary_max_new_tokens: int = 16
    repetition_penalty: float = 1.05
    streaming_eos_base_threshold: Optional[float] = None
    streaming_eos_threshold_step: float = 0.0
    keep_answers: bool = False
    mrope: str = "full"

    def __post_init__(self):
        object.__setattr__(self, "answer_choices", tuple(self.answer_choices))
        checks = [
            ("mode", self.mode in MODES, f"must be one of {MODES}"),
            ("answer_mode", self.answer_mode in ANSWER_MODES, f"must be one of {ANSWER_MODES}"),
            ("mrope", self.mrope in MROPE_MODES, f"must be one of {MROPE_MODES}"),
            ("answer_choices", len(self.answer_choices) >= 2 and len(set(self.answer_choices)) == len(self.answer_choices)
             and all(isinstance(c, str) for c in self.answer_choices), "must list >= 2 distinct texts (quote No/Yes in YAML)"),
            ("fps", self.fps > 0, "must be > 0"),
            ("first_turn_frames", self.first_turn_frames >= 2 and self.first_turn_frames % 2 == 0,
             "must be an even number >= 2 (Qwen2-VL groups 2 frames)"),
            ("turn_frames", self.turn_frames >= 2 and self.turn_frames % 2 == 0, "must be an even number >= 2"),
            ("min_pixels", self.min_pixels >= PIXELS_28, "must be >= 28*28"),
            ("max_pixels", self.max_pixels >= self.min_pixels, "must be >= min_pixels"),
            ("clip_min_pixels", self.clip_min_pixels >= PIXELS_28, "must be >= 28*28"),
            ("clip_max_pixels", self.clip_max_pixels >= self.clip_min_pixels, "must be >= clip_min_pixels"),
            ("clip_total_pixels", self.clip_total_pixels >= self.clip_min_pixels, "must be >= clip_min_pixels"),
            ("clip_max_frames", self.clip_max_frames >= 2, "must be >= 2"),
            ("commentary_max_new_tokens", self.commentary_max_new_tokens >= 1, "must be >= 1"),
            ("repetition_penalty", self.repetition_penalty > 0, "must be > 0"),
        ]
        check_settings(self, "LiveCC", checks)
        if self.model_path is None and not self.random_weights:
            raise ValueError("invalid LiveCC setting model_path=None: pass a local LiveCC-7B checkpoint folder, "
                             "or framework.random_weights=true for random weights (latency only)")

    @property
    def frame_interval(self) -> float:
        return 1.0 / self.fps

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> "LiveCCConfig":
        """Build from a plain mapping; `name` (the Hydra group key) is ignored, unknown keys are errors."""
        return settings_from_mapping(cls, mapping, "LiveCC", ignore=("name",))
