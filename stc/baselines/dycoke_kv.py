"""DyCoke's dynamic KV pruning (DP) at decoding time (Tao et al., CVPR 2025) — a CONTEXT method.

Released (KD-TAO/DyCoke `modeling_qwen2.py`, L = `dycoke_l` = 3, P = `dycoke_p` = 0.7), per decoding step:
  1. take layer L's attention row of the new token over the image tokens, averaged over heads;
  2. if its cosine to the previous step's row is < 0.9 (or there is none), re-select the kept set:
     the top (1 - P) * |image| image tokens by that row, plus every non-image token;
  3. layers > L attend only to the kept set; layers <= L see the whole cache.
The full KV stays in memory (no memory saving; the authors confirm this, KD-TAO/DyCoke#2).

The released code never runs step 3: a wiring bug leaves the flag None inside the decoder
(KD-TAO/DyCoke#6). Ours runs it; `apply_pruning: false` reproduces the released behaviour (no pruning)
for parity rows.

Host side: the ReKV host calls `start_answer` with each layer's visual span of the answer context and
`decode_keys` at every decoding step (frameworks/rekv/answer_context.py). ReKV retrieves blocks per
layer, so "the same image tokens" of layers > L are the same POSITIONS in each layer's visual span (the
release has one shared cache); positions beyond a shorter span are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from stc.compression.base import ContextMethod


@dataclass(frozen=True)
class DyCokeKVConfig:
    """layer: L, the layer whose attention row decides (released 3). prune_ratio: P, share of image tokens
    pruned for layers > L (released 0.7). similarity_threshold: re-select when the row's cosine to the
    previous step's falls below it (0.9). apply_pruning: False = the released code (never prunes)."""

    layer: int = 3
    prune_ratio: float = 0.7
    similarity_threshold: float = 0.9
    apply_pruning: bool = True

    def __post_init__(self):
        if self.layer < 0:
            raise ValueError(f"compression.dycoke_kv.layer={self.layer}: must be >= 0")
        if not 0.0 <= self.prune_ratio < 1.0:
            raise ValueError(f"compression.dycoke_kv.prune_ratio={self.prune_ratio}: must be in [0, 1)")
        if not -1.0 <= self.similarity_threshold <= 1.0:
            raise ValueError(f"compression.dycoke_kv.similarity_threshold={self.similarity_threshold}: must be in [-1, 1]")


def attention_row(queries: torch.Tensor, keys: torch.Tensor, scale: float) -> torch.Tensor:
    """Softmax attention of one query token over keys, averaged over query heads: q [Hq, 1, D],
    keys [Hkv, Lk, D] (GQA: head h reads KV head h // G) -> [Lk] float32."""
    heads, kv_heads = queries.shape[0], keys.shape[0]
    grouped = queries.float().view(kv_heads, heads // kv_heads, queries.shape[-1])
    logits = grouped @ keys.float().transpose(-1, -2) * scale  # [Hkv, G, Lk]
    return torch.softmax(logits, dim=-1).mean(dim=(0, 1))


class DyCokeKVMethod(ContextMethod):
    name = "dycoke_kv"
    config_class = DyCokeKVConfig

    def __init__(self, config: DyCokeKVConfig):
        super().__init__(config)
        self.reset()

    def reset(self) -> None:
        self.spans: list[tuple[int, int]] = []
        self.previous: Optional[torch.Tensor] = None
        self.kept: Optional[torch.Tensor] = None  # kept image positions, relative to the span start
        self._step_index: dict = {}  # this decoding step's key index per (span, context length, device)
        self.decode_steps = self.reselections = self.answers = 0
        self.image_tokens = self.kept_image_tokens = 0

    def start_answer(self, visual_spans: Sequence[tuple[int, int]]) -> None:
        self.spans = [tuple(span) for span in visual_spans]
        self.previous = self.kept = None
        self._step_index = {}
        self.answers += 1

    def decode_keys(self, layer: int, queries: torch.Tensor, keys: torch.Tensor, scale: float) -> Optional[torch.Tensor]:
        cfg = self.config
        if not cfg.apply_pruning or not self.spans or layer >= len(self.spans) or cfg.layer >= len(self.spans):
            return None
        start, end = self.spans[layer]
        if layer == cfg.layer:
            self.decode_steps += 1
            self._step_index = {}  # a new step: the kept set may change below
            row = attention_row(queries, keys, scale)[start:end]
            if row.numel() == 0:
                return None
            similar = self.previous is not None and self.previous.shape == row.shape and \
                float(F.cosine_similarity(row, self.previous, dim=0)) >= cfg.similarity_threshold
            if not similar:
                keep = max(1, int(round((1 - cfg.prune_ratio) * row.numel())))
                self.kept = torch.topk(row, keep).indices.sort().values
                self.reselections += 1
                self.image_tokens, self.kept_image_tokens = row.numel(), keep
            self.previous = row
            return None
        if layer < cfg.layer or self.kept is None:
            return None
        # every deeper layer of one step with the same span and context length attends to the same keys:
        # build the index (a masked select, i.e. a host sync on CUDA) once per step, not once per layer
        key = (start, end, keys.shape[1], keys.device)
        if key not in self._step_index:
            image = self.kept[self.kept < end - start] + start
            device = keys.device
            self._step_index[key] = torch.cat([torch.arange(start, device=device), image.to(device),
                                               torch.arange(end, keys.shape[1], device=device)])
        return self._step_index[key]

    def stats(self) -> dict:
        return {"answers": self.answers, "decode_steps": self.decode_steps, "reselections": self.reselections,
                "image_tokens": self.image_tokens, "kept_image_tokens": self.kept_image_tokens,
                "pruning_applied": self.config.apply_pruning}
