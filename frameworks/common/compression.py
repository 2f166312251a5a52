"""The one place where hosts wire token compression: attach, compress, reset, report.

    compression = HostCompression(spec, tokens_per_frame=196)   # validates budgets at host build
    compression.attach(vision_tower)                            # VISION methods (STC-Cacher, ToMe)
    with compression.bypass(): tower(still_image)               # not a stream frame
    kept, indices = compression.compress_tokens(tokens, TokenSide(grid=(14, 14)))   # TOKENS methods
    compression.reset()                                         # new video
    compression.stats()   # {"cacher": {...}, "pruner": {...}}  -> StageTimings.extra["compression"]

Hosts hold one `HostCompression` per stream and never name a method: what runs is decided by the
spec (`compression=` on the command line). CONTEXT methods are reachable through `context_methods`
for the host hooks that call them.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Any, Iterator, Optional

import torch
from torch import nn

from stc.compression import CompressionSpec, Stage, TokenSide


class HostCompression:
    """The compression methods of one stream of one host, in pipeline order."""

    def __init__(self, spec: Any, tokens_per_frame: Optional[int] = None, *, host: str = "host",
                 supported_stages: tuple[Stage, ...] = (Stage.VISION, Stage.TOKENS, Stage.CONTEXT),
                 tower_tokens: Optional[int] = None):
        """`tokens_per_frame`: tokens per frame the host feeds the TOKENS stage without compression
        (196 on LLaVA-OV, after pooling). `tower_tokens`: patch tokens per frame out of the vision
        tower (729); when a VISION method changes that count (`reduces_in_tower`), the host must skip
        its grid steps and the TOKENS stage starts from the tower's count instead."""
        self.spec = CompressionSpec.coerce(spec)
        self.methods = self.spec.build()
        for method in self.methods:
            if method.stage not in supported_stages:
                raise ValueError(f"compression.{method.name}: the {host} host does not support "
                                 f"{method.stage.value}-stage methods")
        self.tower_tokens_out = self._vision_tokens_out(tower_tokens)
        self.reduces_in_tower = self.tower_tokens_out is not None and self.tower_tokens_out != tower_tokens
        self.tokens_in = self.tower_tokens_out if self.reduces_in_tower else tokens_per_frame
        self.tokens_out = self._tokens_out(self.tokens_in)
        self.attached = False

    # ---- by stage ---------------------------------------------------------------------------
    def _of(self, stage: Stage) -> list:
        return [m for m in self.methods if m.stage == stage]

    @property
    def vision_methods(self) -> list:
        return self._of(Stage.VISION)

    @property
    def token_methods(self) -> list:
        return self._of(Stage.TOKENS)

    @property
    def context_methods(self) -> list:
        return self._of(Stage.CONTEXT)

    @property
    def requires(self) -> set[str]:
        """TokenSide fields some TOKENS method reads (a host computes costly ones only on demand)."""
        return {need for method in self.token_methods for need in method.requires}

    def _vision_tokens_out(self, tokens: Optional[int]) -> Optional[int]:
        """Patch tokens per frame out of the tower after every VISION method (None if unknown)."""
        if tokens is None:
            return None
        for method in self.vision_methods:
            tokens = method.tokens_out(tokens)
            if tokens is None:
                return None
        return tokens

    def _tokens_out(self, tokens: Optional[int]) -> Optional[int]:
        """Tokens per frame after every TOKENS method; ValueError naming the knob when a budget is
        impossible (checked at host build, never reported as applied when it is not)."""
        if tokens is None:
            return None
        for method in self.token_methods:
            tokens = method.tokens_out(tokens)
            if tokens is None:
                return None
            if tokens < 1:
                raise ValueError(f"compression.{method.name}: leaves {tokens} tokens per frame; the budget must be >= 1")
        return tokens

    # ---- lifetime ---------------------------------------------------------------------------
    def attach(self, tower: nn.Module) -> None:
        for method in self.vision_methods:
            method.attach(tower)
        self.attached = True

    @contextmanager
    def bypass(self) -> Iterator[None]:
        with ExitStack() as stack:
            for method in self.vision_methods:
                stack.enter_context(method.bypass())
            yield

    def compress_tokens(self, tokens: torch.Tensor, side: Optional[TokenSide] = None):
        """Run the TOKENS methods in order on [F, T, D]. Returns (tokens, indices into the input's
        T axis, or None once a method merged tokens)."""
        side = side or TokenSide()
        return self._chain(tokens, lambda position, method, x: method.compress(x, side))

    # ---- the TOKENS stage split for CUDA graphs (frameworks/common/graphed_tokens.py) -----------
    @property
    def tokens_graph_safe(self) -> bool:
        """Whether `run_tokens` can be captured in a CUDA graph: every TOKENS method is `graph_safe`,
        none reads tower side information, and the count per frame is fixed."""
        return self.tokens_out is not None and all(m.graph_safe and not m.requires for m in self.token_methods)

    def begin_tokens(self, shape: tuple[int, int, int], device: torch.device, side: TokenSide) -> tuple:
        """Host half of `compress_tokens` on tokens of `shape` [F, T, D]: one plan per TOKENS method
        (hashable when the stage is graph-safe). Advances the methods' host counters."""
        frames, tokens, dim = shape
        plans = []
        for method in self.token_methods:
            plans.append(method.begin((frames, tokens, dim), device, side))
            tokens = method.tokens_out(tokens)
        return tuple(plans)

    def run_tokens(self, tokens: torch.Tensor, side: TokenSide, plans: tuple):
        """Device half of `compress_tokens`, with the plans of `begin_tokens`: the same results."""
        return self._chain(tokens, lambda position, method, x: method.run(x, side, plans[position]))

    def token_state_buffers(self) -> list[torch.Tensor]:
        """Device tensors the TOKENS methods write in place during `run_tokens`."""
        return [buffer for method in self.token_methods for buffer in method.state_buffers()]

    def _chain(self, tokens, step):
        """Apply `step(position, method, tokens)` of every TOKENS method in order, composing indices."""
        indices = None
        for position, method in enumerate(self.token_methods):
            if isinstance(tokens, (list, tuple)):
                raise ValueError(f"compression.{method.name}: cannot follow a method with a variable token "
                                 f"count per frame ({self.token_methods[position - 1].name})")
            tokens, picked = step(position, method, tokens)
            if position == 0:
                indices = picked
            elif isinstance(picked, (list, tuple)):
                indices = None
            elif indices is not None and picked is not None:
                indices = torch.gather(indices, 1, picked)
            else:
                indices = None
        return tokens, indices

    # ---- CONTEXT hooks (see stc.compression.base.ContextMethod) ---------------------------------
    def start_answer(self, visual_spans) -> None:
        for method in self.context_methods:
            method.start_answer(visual_spans)

    def decode_keys(self, layer: int, queries: torch.Tensor, keys: torch.Tensor, scale: float):
        """Indices of the context keys `layer` attends to at a decoding step (None = all). Several CONTEXT
        methods narrow the set in turn."""
        keep = None
        for method in self.context_methods:
            view = keys if keep is None else keys[:, keep]
            picked = method.decode_keys(layer, queries, view, scale)
            if picked is not None:
                keep = picked if keep is None else keep[picked]
        return keep

    def store_blocks(self, ids, sizes) -> list[int]:
        """Ids of stored blocks to evict before/after storing new blocks `ids` (bounded stores)."""
        evicted: list[int] = []
        for method in self.context_methods:
            evicted += [i for i in method.store_blocks(ids, sizes) if i not in evicted]
        return evicted

    def blocks_restored(self, ids) -> None:
        for method in self.context_methods:
            method.blocks_restored(ids)

    def reset(self) -> None:
        for method in self.methods:
            method.reset()

    def close(self) -> None:
        for method in self.methods:
            method.close()
        self.attached = False

    # ---- reporting --------------------------------------------------------------------------
    def stats(self) -> dict[str, dict]:
        return {method.name: method.stats() for method in self.methods}

    def frame_kinds(self) -> tuple[int, int]:
        """(reference, selective) frame counts of a vision method that reuses frames (0, 0 if none)."""
        reference = selective = 0
        for method in self.vision_methods:
            stats = method.stats()
            reference += stats.get("reference_frames", 0)
            selective += stats.get("selective_frames", 0)
        return reference, selective

    @property
    def label(self) -> str:
        return self.spec.label

    def __bool__(self) -> bool:
        return bool(self.methods)
