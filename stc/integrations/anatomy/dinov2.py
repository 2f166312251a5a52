"""DINOv2 layers (`transformers.Dinov2Model`, also `Dinov2WithRegistersModel`): LayerNorm `norm1/norm2`,
separate `attention.attention.{query,key,value}`, `attention.output.dense`, per-channel layer scales
`layer_scale1/2.lambda1` on both branches, fc1-act-fc2 MLP (SwiGLU variant: eager path only). Prefix
tokens: CLS plus the register tokens."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from stc.integrations.anatomy.base import LayerAnatomy


class Dinov2Anatomy(LayerAnatomy):
    family = "dinov2"
    layer_class_names = ("Dinov2Layer", "Dinov2WithRegistersLayer")
    paths = dict(norm1="norm1", norm2="norm2", attn="attention.attention", q="attention.attention.query",
                 k="attention.attention.key", v="attention.attention.value", qkv=None,
                 out="attention.output.dense", mlp="mlp", scale1="layer_scale1", scale2="layer_scale2")

    def layer_scale(self, layer: nn.Module, key: str) -> Optional[torch.Tensor]:
        return layer.get_submodule(self.paths[key]).lambda1

    def num_heads(self, attn: nn.Module) -> int:
        return attn.num_attention_heads

    def scaling(self, attn: nn.Module) -> float:
        return attn.scaling

    def head_dim(self, attn: nn.Module) -> int:
        return attn.attention_head_size

    def num_prefix_tokens(self, tower: nn.Module) -> int:
        return 1 + int(getattr(getattr(tower, "config", None), "num_register_tokens", 0) or 0)

    def activation(self, p) -> Optional[str]:
        act = getattr(p.mlp, "activation", None)
        config_act = getattr(getattr(p.attn, "config", None), "hidden_act", None)
        return config_act if act is not None else None
