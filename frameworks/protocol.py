"""The contract between streaming VideoLLM hosts and everything that drives them.

Every host in `frameworks/` (ReKV, StreamForest, Dispider, LiveCC, and the tiny built-in test host)
implements `StreamingVideoLLM`; the evaluation runner and the speed harness only ever talk to this
protocol. It is deliberately small:

    host.reset()                                  # new video: clear KV store, cacher and pruner state
    host.ingest(frames, timestamps)               # append frames [F, H, W, 3] uint8 to the stream
    text = host.answer(Query(prompt=..., ...))    # answer at the current point of the stream
    host.timings                                  # per-video StageTimings, reset by reset()

`ingest` may be called several times between answers (streaming reuse: only new frames are encoded).
Hosts that cannot extend a stream incrementally set `supports_incremental = False`; the runner then
re-ingests the whole prefix for every question (the upstream "offline" protocol).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import torch


@dataclass
class Query:
    """One question put to a host at the current end of its stream.

    Attributes:
        prompt: the benchmark's full question text (options already rendered by the benchmark).
        retrieval_text: text used for memory retrieval (ReKV uses the bare question); `None` = `prompt`.
        answer_prefix: text the assistant turn starts with, e.g. ``"Best option: ("`` (ReKV MC primer).
        use_chat_template: wrap `prompt` in the host's chat turn markers. Upstream STC passes OVO/
            StreamingBench prompts raw (False); offline benchmarks use the template (True).
        options: option texts, for hosts that need them (the rule-based test host); may be empty.
        max_new_tokens: greedy decoding budget.
    """

    prompt: str
    retrieval_text: str | None = None
    answer_prefix: str = ""
    use_chat_template: bool = True
    options: Sequence[str] = ()
    max_new_tokens: int = 16


@dataclass
class StageTimings:
    """Per-video stage times in milliseconds and token counts; hosts accumulate, `reset()` zeroes."""

    vit_ms: float = 0.0
    prefill_ms: float = 0.0
    pruner_ms: float = 0.0
    retrieval_ms: float = 0.0
    decode_ms: float = 0.0
    frames: int = 0
    visual_tokens_in: int = 0  # tokens per frame before pruning, summed over frames
    visual_tokens_kept: int = 0  # tokens that reached the LLM / KV store
    vit_reference_frames: int = 0  # STC-Cacher: frames that ran the full tower
    vit_selective_frames: int = 0  # STC-Cacher: frames that ran the selective path
    peak_memory_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class StreamingVideoLLM(Protocol):
    """What a streaming video LLM host offers to the evaluation runner and the speed harness."""

    name: str
    supports_incremental: bool

    def reset(self) -> None:
        """Start a new stream: drop all per-video state (KV store, cacher references, pruner history)."""

    def ingest(self, frames: torch.Tensor, timestamps: Sequence[float]) -> None:
        """Append frames (uint8 [F, H, W, 3], RGB) sampled at `timestamps` (seconds) to the stream."""

    def answer(self, query: Query) -> str:
        """Answer `query` given everything ingested since the last `reset()`."""

    @property
    def timings(self) -> StageTimings:
        """Stage timings accumulated since the last `reset()`."""
