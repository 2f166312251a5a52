"""Qwen2-VL vision blocks (`Qwen2VisionTransformerPretrainedModel.blocks`, LiveCC's ViT).

Differences from SigLIP/CLIP that the cacher must respect:
- Token layout: a block sees ONE flat sequence [N, D] of all patches of the call, split into attention
  segments by `cu_seqlens`; each segment is one temporal group (`temporal_patch_size` = 2 frames) of
  h*w patches. A segment is the unit of the STC schedule: rows = segments, [G, h*w, D]. All segments
  of one call must have the same size (one video per call, which is how LiveCC calls it).
- q/k/v come from one fused `attn.qkv` Linear (q, k, v stacked along the output dimension).
- 2D rotary on q and k (`position_embeddings` = (cos, sin) per flat token, identical for every
  segment of a call because positions depend only on (h, w)); queries of the recomputed tokens are
  rotated with the tables gathered at THEIR positions.
- The patch merger after the blocks is untouched (it runs on the cacher's output).
No prefix tokens; the fused (compiled) path does not cover this family (eager and graphed do).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from stc.integrations.anatomy.base import LayerAnatomy, LayerParts, Rows


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class Qwen2VLAnatomy(LayerAnatomy):
    family = "qwen2_vl"
    layer_class_names = ("Qwen2VLVisionBlock",)
    tower_levels = 1  # <visual>.blocks
    paths = dict(norm1="norm1", norm2="norm2", attn="attn", q=None, k=None, v=None, qkv="attn.qkv",
                 out="attn.proj", mlp="mlp", scale1=None, scale2=None)

    def scaling(self, attn: nn.Module) -> float:
        return attn.scaling

    def num_prefix_tokens(self, tower: nn.Module) -> int:
        return 0

    # ---- layout -----------------------------------------------------------------------------
    def to_rows(self, hidden_states: torch.Tensor, args: tuple, kwargs: dict, context=None) -> Rows:
        cu_seqlens = args[0] if args else kwargs["cu_seqlens"]
        groups = cu_seqlens.shape[0] - 1
        total, width = hidden_states.shape
        if context is not None:  # a later layer of the call: the first one checked sizes and built the tables
            tokens = context[0].shape[0]
            return Rows(hidden_states.view(groups, tokens, width), None, context, total)
        cos, sin = kwargs["position_embeddings"]
        if groups < 1 or total % groups:
            raise ValueError(f"STC-Cacher (Qwen2-VL): {total} patches do not split into {groups} equal temporal groups")
        tokens = total // groups
        if not (hidden_states.is_cuda and torch.cuda.is_current_stream_capturing()):  # one host sync per call
            sizes = cu_seqlens[1:] - cu_seqlens[:-1]
            if not bool((sizes == tokens).all()):
                raise ValueError("STC-Cacher (Qwen2-VL): one tower call must hold temporal groups of equal size "
                                 f"(one video per call); got segment sizes {sizes.tolist()}")
        # rotary tables of the first group serve every group (positions depend on (h, w) only)
        return Rows(hidden_states.view(groups, tokens, width), None, (cos[:tokens].float(), sin[:tokens].float()), total)

    def from_rows(self, output: torch.Tensor, rows: Rows) -> torch.Tensor:
        return output.reshape(rows.layout, output.shape[-1])

    def call_rows(self, pixel_values: torch.Tensor, kwargs: dict) -> int:
        grid = kwargs.get("grid_thw")
        return int(grid[:, 0].sum()) if grid is not None else pixel_values.shape[0]

    # ---- math -------------------------------------------------------------------------------
    def _project(self, p: LayerParts, x, which: int):
        width = x.shape[-1]
        rows = slice(which * width, (which + 1) * width)
        return F.linear(x, p.qkv.weight[rows], p.qkv.bias[rows] if p.qkv.bias is not None else None)

    def _rotate(self, p: LayerParts, x, rows: Rows, index: Optional[torch.Tensor]):
        """Apply the vision rotary to x [B, n, D] at token positions `index` [B, n] (None = 0..T-1),
        in float32 like `apply_rotary_pos_emb_vision`."""
        cos, sin = rows.context
        if index is not None:
            cos, sin = cos[index], sin[index]  # [B, n, head_dim]
        batch, n, width = x.shape
        heads = x.view(batch, n, -1, p.head_dim).float()
        cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
        rotated = heads * cos + _rotate_half(heads) * sin
        return rotated.to(x.dtype).view(batch, n, width)

    def keys(self, p: LayerParts, normed, rows: Rows):
        return self._rotate(p, self._project(p, normed, 1), rows, None)

    def queries(self, p: LayerParts, normed, rows: Rows, index: Optional[torch.Tensor] = None):
        return self._rotate(p, self._project(p, normed, 0), rows, index)

    def values(self, p: LayerParts, normed):
        return self._project(p, normed, 2)

    def fused_weights(self, p: LayerParts):
        return None
