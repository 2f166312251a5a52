"""ToMe (Bolya et al., ICLR 2023) inside a HF SigLIP / CLIP vision tower, merged down to a per-frame budget.

Per encoder layer (released timm patch, re-written for HF layers):
    x = x + attn(LN1(x))   with proportional attention: logits + log(size_j)   (SDPA float mask)
    merge r tokens by bipartite soft matching on the layer's keys averaged over heads, size-weighted
    x = x + MLP(LN2(x))
The merge schedule (constant r, the release's default, capped so the LAST layer lands exactly on the
budget) takes the tower's N patch tokens (+ CLS, protected) to `tokens_per_frame`: 729 -> 49 on LLaVA-OV
is r = 27 on 25 layers and 5 on the last. Surviving tokens are finally ordered by their first source
patch (raster order) so the projector/LLM see them in spatial order.

Stream/host differences (docs/baselines/README.md): LLaVA-OV hosts pool a 27x27 grid 2x to 196 tokens;
merged tokens have no grid, so with ToMe the host skips the pooling and the tower's k tokens ARE the
frame's tokens (the spec's recommended reconstruction of the paper's in-ViT ToMe at 49/196).

Layer parts are read through the ViT anatomy adapters (`stc.integrations.anatomy`), so the
patch can move onto the project's ViT anatomy adapters without touching the algorithm. Patching sets an
instance `forward` on every encoder layer; `detach()` deletes it (the class forward comes back).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from stc.baselines.budget import TokenCounts, check_budget, check_positive
from stc.baselines.tome_merge import bipartite_soft_matching, merge_schedule, merge_weighted
from stc.integrations.anatomy.probe import tower_layers
from stc.compression.base import VisionMethod


@dataclass(frozen=True)
class ToMeConfig:
    """tokens_per_frame: patch tokens out of the tower (CLS not counted). proportional_attention: add
    log(size) to the attention logits (released default). order_by_position: sort the final tokens by
    their first source patch (False = ToMe's own [unmerged A ; B] order)."""

    tokens_per_frame: int = 49
    proportional_attention: bool = True
    order_by_position: bool = True

    def __post_init__(self):
        check_positive("tome", "tokens_per_frame", self.tokens_per_frame)


class _Forward:
    """Per-call state carried from layer to layer: token sizes and first source positions."""

    def __init__(self, batch: int, tokens: int, device, dtype):
        self.tokens_in = tokens
        self.size = torch.ones(batch, tokens, 1, device=device, dtype=dtype)
        self.position = torch.arange(tokens, device=device).expand(batch, tokens).contiguous()


class ToMeMethod(VisionMethod):
    name = "tome"
    config_class = ToMeConfig

    def __init__(self, config: ToMeConfig):
        super().__init__(config)
        self.layers: list[nn.Module] = []
        self.has_cls = False
        self.bypassed = False
        self.schedule: Optional[list[int]] = None
        self._state: Optional[_Forward] = None
        self.reset()

    # ---- contract ------------------------------------------------------------------------------
    def tokens_out(self, tokens_in: int) -> int:
        return check_budget(self.name, self.config.tokens_per_frame, tokens_in)

    def attach(self, tower: nn.Module) -> None:
        if self.layers:
            raise RuntimeError("compression.tome: already attached; call detach() first")
        found = tower_layers(tower, "compression.tome")
        self.has_cls, self.parts = found.prefix_tokens, found.parts
        layers = found.layers
        config = getattr(tower, "config", None)
        if config is not None and hasattr(config, "image_size"):
            patches = (config.image_size // config.patch_size) ** 2
            self._schedule_for(patches + self.has_cls, len(layers))  # impossible budgets fail at attach
        for index, layer in enumerate(layers):
            layer.forward = self._make_forward(layer, index, len(layers))
        self.layers = layers

    def detach(self) -> None:
        for layer in self.layers:
            if "forward" in layer.__dict__:
                del layer.forward
        self.layers = []

    @contextmanager
    def bypass(self) -> Iterator[None]:
        previous, self.bypassed = self.bypassed, True
        try:
            yield
        finally:
            self.bypassed = previous

    def reset(self) -> None:
        self.counts = TokenCounts()
        self.merges = 0

    def stats(self) -> dict:
        return {**self.counts.as_dict(), "tokens_merged": self.merges, "schedule": list(self.schedule or [])}

    # ---- the patched layer ---------------------------------------------------------------------
    def _schedule_for(self, tokens: int, layers: int) -> list[int]:
        target = self.config.tokens_per_frame + self.has_cls
        if target > tokens:
            check_budget(self.name, self.config.tokens_per_frame, tokens - self.has_cls)
        if self.schedule is None or self._schedule_key != (tokens, layers):
            try:
                self.schedule = merge_schedule(tokens, target, layers, protected=int(self.has_cls))
            except ValueError as error:
                raise ValueError(f"compression.tome.tokens_per_frame={self.config.tokens_per_frame}: {error}") from None
            self._schedule_key = (tokens, layers)
        return self.schedule

    def _make_forward(self, layer: nn.Module, index: int, num_layers: int):
        original = type(layer).forward

        def forward(hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
            if self.bypassed:
                return original(layer, hidden_states, *args, **kwargs)
            attention_mask = args[0] if args else kwargs.get("attention_mask")
            if attention_mask is not None:
                raise ValueError("compression.tome: the vision tower passed an attention mask; ToMe merges "
                                 "tokens and cannot honour it")
            return self._layer(layer, index, num_layers, hidden_states)

        return forward

    def _layer(self, layer: nn.Module, index: int, num_layers: int, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        if index == 0:
            self._state = _Forward(batch, tokens, x.device, x.dtype)
            self._schedule_for(tokens, num_layers)
        state, schedule = self._state, self.schedule
        parts = self.parts[index]
        normed = parts.norm1(x)
        shape = (batch, tokens, parts.heads, parts.head_dim)
        q = parts.q(normed).view(shape).transpose(1, 2)
        k = parts.k(normed).view(shape).transpose(1, 2)
        v = parts.v(normed).view(shape).transpose(1, 2)
        bias = None
        if self.config.proportional_attention:
            bias = state.size.log().to(q.dtype).view(batch, 1, 1, tokens)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=parts.scaling)
        branch = parts.out(attended.transpose(1, 2).reshape(batch, tokens, width))
        x = x + (branch * parts.scale1 if parts.scale1 is not None else branch)
        r = schedule[index]
        if r > 0:
            merge = bipartite_soft_matching(k.mean(dim=1), r, protect_first=self.has_cls)
            x, state.size = merge_weighted(merge, x, state.size)
            state.position = merge(state.position, "amin")
            self.merges += batch * r
        branch = parts.mlp(parts.norm2(x))
        x = x + (branch * parts.scale2 if parts.scale2 is not None else branch)
        if index == num_layers - 1:
            if self.config.order_by_position:
                order = state.position.argsort(dim=1)
                x = x.gather(1, order[..., None].expand(-1, -1, width))
            self.counts.add(batch, batch * (state.tokens_in - self.has_cls), batch * (x.shape[1] - self.has_cls))
            self._state = None
        return x
