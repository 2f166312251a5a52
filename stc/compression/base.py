"""The contract every token-compression method implements, whatever it is (STC, ToMe, VisionZip, ...).

A method acts at exactly one *stage* of a streaming VideoLLM:

    frames -> [vision encoder] -> tokens -> [projector] -> [LLM pre-fill / KV context] -> answer
               Stage.VISION                 Stage.TOKENS       Stage.CONTEXT

- VISION methods change the encoder's computation (STC-Cacher reuses it, ToMe merges inside it):
  `attach(tower)` / `detach()`, and `bypass()` for calls that are not frames of the stream.
- TOKENS methods choose which of a frame's tokens reach the LLM (STC-Pruner, VisionZip, VidCom²,
  random drop): `compress(tokens, side)`. A method whose count varies per frame (DyCoke's TTM) returns
  `tokens_out(...) = None` and from `compress` a list of F tensors [k_f, D] (and a list of indices).
- CONTEXT methods act on the LLM's KV/context (DyCoke's decode-time pruning, StreamDyCoke's bounded
  cache); their hooks are declared on `ContextMethod`.

Composite methods (STC = cacher + pruner, DyCoke = merging + KV pruning) are several registered
methods listed together in one compression spec. Every method holds the state of ONE stream: hosts
build one instance per stream and call `reset()` at a new video. Hosts never call methods directly:
`frameworks/common/compression.py` does, so no host code names a method.
"""

from __future__ import annotations

import abc
import enum
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Optional, Sequence

import torch
from torch import nn


class Stage(str, enum.Enum):
    """Where in the pipeline a method acts (also the order in which a host applies them)."""

    VISION = "vision"
    TOKENS = "tokens"
    CONTEXT = "context"


@dataclass
class TokenSide:
    """Side information a TOKENS method may ask for (declared in `TokenMethod.requires`).

    Attributes:
        grid: (rows, cols) of the frame's token grid when tokens are a flat row-major grid.
        attention: [F, T] attention each token receives in the vision tower's feature layer (the layer
            whose output the host projects): the CLS row averaged over heads when the tower has a CLS
            token, else the mean over heads and queries (VisionZip's dominant tokens). Mapped onto the
            host's token grid like the tokens (bilinear 2x pooling on LLaVA-OV). Hosts fill it only
            when a method requires it (one extra attention-score pass over that layer).
        keys: [F, T, head_dim] that layer's keys averaged over heads, on the same grid (VisionZip's and
            ToMe's similarity metric). Filled together with `attention`.
        vision_features: [F, T, C] the encoder features the tokens were projected from.
        frame_offset: index of the first frame of this call in the stream (0 after reset()).
    """

    grid: Optional[tuple[int, int]] = None
    attention: Optional[torch.Tensor] = None
    keys: Optional[torch.Tensor] = None
    vision_features: Optional[torch.Tensor] = None
    frame_offset: int = 0


class CompressionMethod:
    """Base of all methods. Subclasses set `name`, `stage`, `config_class` and take their typed
    (frozen dataclass) config as the only constructor argument."""

    name: ClassVar[str]
    stage: ClassVar[Stage]
    config_class: ClassVar[type]

    def __init__(self, config):
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} expects a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config

    def reset(self) -> None:
        """Start a new stream: forget every per-video state."""

    def stats(self) -> dict[str, Any]:
        """What the method did since the last reset (counts, not timings), JSON-serialisable."""
        return {}

    def tokens_out(self, tokens_in: int) -> Optional[int]:
        """Tokens per frame after this method for `tokens_in` tokens per frame, or None when the
        count varies per frame. Raises ValueError naming the knob when the budget is impossible."""
        return tokens_in

    def close(self) -> None:
        """Release what the method holds (detach patches); idempotent."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


class VisionMethod(CompressionMethod, abc.ABC):
    """Acts inside the vision encoder.

    `tokens_out(tokens_in)` here counts the tower's PATCH tokens per frame (a CLS token is not counted).
    A method that changes it (ToMe merges 729 -> 49) makes hosts skip any grid-based step after the
    tower (LLaVA-OV's 2x pooling): the tower's tokens are then the frame's tokens."""

    stage = Stage.VISION

    @abc.abstractmethod
    def attach(self, tower: nn.Module) -> None:
        """Patch `tower` (the vision encoder module) for this stream."""

    def detach(self) -> None:
        """Undo `attach`; the tower computes exactly as before."""

    @contextmanager
    def bypass(self) -> Iterator[None]:
        """Run the unmodified tower inside the block (still images, anyres crops: not stream frames)."""
        yield

    def close(self) -> None:
        self.detach()


class TokenMethod(CompressionMethod, abc.ABC):
    """Selects/merges the tokens of each frame between the encoder and the LLM."""

    stage = Stage.TOKENS
    requires: ClassVar[Sequence[str]] = ()  # names of TokenSide fields the method reads
    # True (class attribute or per-instance property) when `begin`/`run` split a call so that `run` can be
    # captured in a CUDA graph and replayed: `run` launches kernels only (no .item()/.tolist(), no shapes
    # or Python branches on tensor values, no CPU tensors, no Python state changes) and mutates only
    # `state_buffers()` in place; everything `run` depends on besides its input is in the hashable plan
    # `begin` returns (equal plans => same kernels on the same buffers). `run` must not read
    # `side.frame_offset` or other per-call host values except through the plan.
    graph_safe: ClassVar[bool] = False

    @abc.abstractmethod
    def compress(self, tokens: torch.Tensor, side: TokenSide) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """[F, T, D] tokens of F consecutive frames of the stream -> (kept [F, k, D], indices [F, k] or
        None when kept tokens are merges rather than a subset). Causal: frame f may read frames < f."""

    def begin(self, shape: tuple[int, int, int], device: torch.device, side: TokenSide) -> Any:
        """Host half of a call on tokens of `shape` [F, T, D] (validation, counters); returns the plan
        `run` needs. `compress(t, side)` must equal `run(t, side, begin(t.shape, t.device, side))`.
        Default: nothing on the host, `run` is `compress`."""
        return None

    def run(self, tokens: torch.Tensor, side: TokenSide, plan: Any) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Device half of a call planned by `begin` (graph-capturable when `graph_safe`)."""
        return self.compress(tokens, side)

    def state_buffers(self) -> list[torch.Tensor]:
        """Device tensors `run` writes in place (saved/restored around CUDA-graph warm-ups)."""
        return []


class ContextMethod(CompressionMethod):
    """Acts on the LLM's context (KV cache) while frames are stored or while an answer is decoded.
    Hosts call these hooks only through `frameworks.common.compression.HostCompression`; the defaults do
    nothing, so a method overrides the ones it needs."""

    stage = Stage.CONTEXT

    def start_answer(self, visual_spans: Sequence[tuple[int, int]]) -> None:
        """A new answer starts: per LLM layer, the answer context holds the stream's visual tokens at
        positions [start, end) (other positions: sink/prompt/generated text)."""

    def decode_keys(self, layer: int, queries: torch.Tensor, keys: torch.Tensor, scale: float) -> Optional[torch.Tensor]:
        """One decoding step (a single new token) at `layer`: queries [Hq, 1, D] and the context keys
        [Hkv, Lk, D] (RoPE applied; the last key is the new token's). Returns the indices of the keys
        this layer attends to, or None for all of them."""
        return None

    def store_blocks(self, ids: Sequence[int], sizes: Sequence[int]) -> list[int]:
        """New frame blocks are about to be stored (stream-wide ids, tokens each occupies). Returns the
        ids of stored blocks to evict so that a bounded store stays within its bound (may include new
        ids when one chunk alone exceeds it); default: none."""
        return []

    def blocks_restored(self, ids: Sequence[int]) -> None:
        """Stored blocks with these ids were retrieved into an answer context."""
