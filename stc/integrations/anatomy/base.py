"""What STC-Cacher needs to know about one ViT family: where the parts of an encoder layer are and how
the block composes them. The cacher's math (`stc/cacher/layer.py`, `fused.py`) reads layers only
through an anatomy, so a new family is one file here plus one line in the registry (`__init__.py`).

A pre-LN ViT block is, for every family we support,

    a   = scale1 * out(attention(rotate(q(norm1(h))), rotate(k(norm1(h))), v(norm1(h)), mask))
    mid = h + a
    out = mid + scale2 * mlp(norm2(mid))

with family-specific parts: separate or fused q/k/v, rotary or not, layer scales or not, the token
layout of the block's input (a batch of frames [B, T, D], or Qwen2-VL's flat [N, D] with `cu_seqlens`
segments). The base class implements the SigLIP/CLIP layout by attribute paths; families override
the paths or the few methods that differ.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class LayerParts:
    """The modules of one encoder layer, resolved once at attach (never looked up per call)."""

    norm1: nn.Module
    norm2: nn.Module
    attn: nn.Module  # the module the attention backend is called with
    q: Optional[nn.Module]
    k: Optional[nn.Module]
    v: Optional[nn.Module]
    qkv: Optional[nn.Module]  # fused projection [3D, D] (q, k, v stacked), when the family has one
    out: nn.Module
    mlp: nn.Module
    scale1: Optional[torch.Tensor]  # per-channel layer scale of the attention branch (DINOv2)
    scale2: Optional[torch.Tensor]
    heads: int
    head_dim: int
    scaling: float


@dataclass
class Rows:
    """A layer call seen as rows of tokens: `hidden` [B, T, D] (one row = one schedule unit: a frame,
    or Qwen2-VL's temporal group), the attention mask for those rows, and family context (rotary
    tables) that the math functions pass back to the anatomy."""

    hidden: torch.Tensor
    mask: Optional[torch.Tensor] = None
    context: Any = None
    layout: Any = None  # how to turn rows back into the layer's output layout


def _eager_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Plain softmax attention; [B, H, q, d] inputs -> ([B, q, H, d], None)."""
    weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


def attention_interface(attn_module: nn.Module):
    """The attention function transformers would use for this module (by `_attn_implementation`):
    the modeling module's own `eager_attention_forward`, or the registered sdpa/flash kernel."""
    eager = getattr(sys.modules.get(type(attn_module).__module__), "eager_attention_forward", _eager_attention)
    config = getattr(attn_module, "config", None)
    implementation = getattr(config, "_attn_implementation", None) or "eager"
    if implementation == "eager":
        return eager
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager)


class LayerAnatomy:
    """SigLIP/CLIP anatomy (also the base of the others). One instance per attached handle."""

    family = "siglip_clip"
    layer_class_names: tuple[str, ...] = ()  # layer classes (any class in the MRO) this family serves
    tower_levels = 2  # the tower whose forward the CUDA-graph runner wraps: <tower>.encoder.layers
    paths = dict(norm1="layer_norm1", norm2="layer_norm2", attn="self_attn", q="self_attn.q_proj",
                 k="self_attn.k_proj", v="self_attn.v_proj", qkv=None, out="self_attn.out_proj", mlp="mlp",
                 scale1=None, scale2=None)

    def __init__(self):
        self.attention = None  # backend function, resolved in `bind`

    # ---- recognising and binding ----------------------------------------------------------
    @classmethod
    def matches(cls, layer: nn.Module) -> bool:
        """True when `layer` is one of this family's layer classes."""
        return any(klass.__name__ in cls.layer_class_names for klass in type(layer).__mro__)

    @classmethod
    def has_parts(cls, layer: nn.Module) -> bool:
        """True when every part path exists (structural match for same-anatomy towers)."""
        try:
            for path in cls.paths.values():
                if path is not None:
                    layer.get_submodule(path)
        except AttributeError:
            return False
        return True

    def bind(self, layers: list[nn.Module]) -> list[LayerParts]:
        """Resolve every layer's parts (and the attention backend, shared by all layers of a tower)."""
        parts = [self.parts(layer) for layer in layers]
        self.attention = attention_interface(parts[0].attn)
        return parts

    def parts(self, layer: nn.Module) -> LayerParts:
        get = lambda key: layer.get_submodule(self.paths[key]) if self.paths[key] else None  # noqa: E731
        attn = get("attn")
        return LayerParts(
            norm1=get("norm1"), norm2=get("norm2"), attn=attn, q=get("q"), k=get("k"), v=get("v"), qkv=get("qkv"),
            out=get("out"), mlp=get("mlp"), scale1=self.layer_scale(layer, "scale1"),
            scale2=self.layer_scale(layer, "scale2"), heads=self.num_heads(attn), head_dim=self.head_dim(attn),
            scaling=self.scaling(attn),
        )

    def layer_scale(self, layer: nn.Module, key: str) -> Optional[torch.Tensor]:
        return None

    def num_heads(self, attn: nn.Module) -> int:
        return attn.num_heads

    def head_dim(self, attn: nn.Module) -> int:
        return attn.head_dim

    def scaling(self, attn: nn.Module) -> float:
        return attn.scale

    def num_prefix_tokens(self, tower: nn.Module) -> int:
        """Tokens before the patch grid (CLS, registers) whose key never changes at layer 0."""
        config = getattr(tower, "config", None)
        return 1 if type(config).__name__.startswith("CLIP") else 0

    # ---- call layout ----------------------------------------------------------------------
    def to_rows(self, hidden_states: torch.Tensor, args: tuple, kwargs: dict, context: Any = None) -> Rows:
        """The layer's inputs as rows. SigLIP/CLIP: hidden [B, T, D], mask = 2nd argument. `context`: the
        Rows.context the first layer of this call derived (later layers reuse it, never redo it)."""
        mask = args[0] if args else kwargs.get("attention_mask")
        return Rows(hidden_states, mask)

    def from_rows(self, output: torch.Tensor, rows: Rows) -> torch.Tensor:
        return output

    def call_rows(self, pixel_values: torch.Tensor, kwargs: dict) -> int:
        """How many rows (schedule units) a tower call with these inputs has."""
        return pixel_values.shape[0]

    # ---- math (x: [B, n, D]) --------------------------------------------------------------
    def norm1(self, p: LayerParts, x):
        return p.norm1(x)

    def keys(self, p: LayerParts, normed, rows: Rows):
        """Keys of all T tokens, in the form attention reads them (rotated where the family rotates)."""
        return p.k(normed)

    def queries(self, p: LayerParts, normed, rows: Rows, index: Optional[torch.Tensor] = None):
        """Queries of the given tokens (`index` [B, n] = their positions in the row; None = all)."""
        return p.q(normed)

    def values(self, p: LayerParts, normed):
        return p.v(normed)

    def attention_branch(self, p: LayerParts, queries, keys, values, mask, rows: Rows):
        """scale1 * out_proj(MHA(queries over keys/values)) -> [B, q, D] (before the residual add)."""
        batch, q_len, width = queries.shape
        split = lambda x: x.view(batch, x.shape[1], -1, p.head_dim).transpose(1, 2)  # noqa: E731
        output, _ = self.attention(p.attn, split(queries), split(keys), split(values), mask,
                                   is_causal=False, scaling=p.scaling, dropout=0.0)
        branch = p.out(output.reshape(batch, q_len, width).contiguous())
        return branch * p.scale1 if p.scale1 is not None else branch

    def mlp_branch(self, p: LayerParts, mid):
        """scale2 * mlp(norm2(mid)) (before the residual add)."""
        branch = p.mlp(p.norm2(mid))
        return branch * p.scale2 if p.scale2 is not None else branch

    # ---- fused (torch.compile) path -------------------------------------------------------
    def fused_weights(self, p: LayerParts) -> Optional[tuple]:
        """Weights for `stc.cacher.fused` (LayerNorm, separate q/k/v, fc1-act-fc2 MLP), or None when
        this family's layer is not expressible there (the eager and graphed paths still work)."""
        if p.q is None or not all(hasattr(p.mlp, name) for name in ("fc1", "fc2")):
            return None
        if not all(isinstance(n, nn.LayerNorm) for n in (p.norm1, p.norm2)):
            return None
        return (
            p.norm1.weight, p.norm1.bias, p.q.weight, p.q.bias, p.k.weight, p.k.bias, p.v.weight, p.v.bias,
            p.out.weight, p.out.bias, p.norm2.weight, p.norm2.bias,
            p.mlp.fc1.weight, p.mlp.fc1.bias, p.mlp.fc2.weight, p.mlp.fc2.bias, p.scale1, p.scale2,
        )

    def activation(self, p: LayerParts) -> Optional[str]:
        config = getattr(p.mlp, "config", None)
        return getattr(config, "hidden_act", None)
