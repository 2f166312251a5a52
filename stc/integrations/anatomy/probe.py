"""Read a tower through its anatomy adapter outside the cacher: its encoder layers with their parts
(for methods that patch layers, e.g. ToMe) and one layer's attention scores (the side information
VisionZip-style methods ask for). Families whose q/k need per-call context (Qwen2-VL's rotary and
fused qkv) are refused with one clear error."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stc.integrations.anatomy.base import LayerAnatomy, LayerParts, Rows


@dataclass
class TowerLayers:
    """The encoder layers of a tower with their adapter and parts, and its prefix-token count."""

    layers: list[nn.Module]
    anatomy: LayerAnatomy
    parts: list[LayerParts]
    prefix_tokens: int


def tower_layers(tower: nn.Module, who: str = "this method") -> TowerLayers:
    """Resolve the tower's encoder layers through the anatomy registry (`find_encoder_layers`)."""
    from stc.integrations.hf_vit import find_encoder_layers

    try:
        _, layers, family = find_encoder_layers(tower)
    except ValueError as error:
        raise TypeError(f"{who}: {error}") from None
    anatomy = family()
    parts = anatomy.bind(list(layers))
    if parts[0].q is None:
        raise TypeError(f"{who}: the {anatomy.family} ViT family (fused qkv, per-call rotary) is not supported; "
                        "towers with separate q/k/v projections are (SigLIP, CLIP, DINOv2)")
    return TowerLayers(list(layers), anatomy, parts, anatomy.num_prefix_tokens(tower))


@torch.no_grad()
def layer_attention(anatomy: LayerAnatomy, parts: LayerParts, layer_input: torch.Tensor,
                    prefix_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention received and head-averaged keys of one encoder layer, patch tokens only.

    layer_input [F, N, D] (the hidden states entering the layer) -> (received [F, P], keys [F, P, head_dim])
    with P = N - prefix: the first prefix token's (CLS) row averaged over heads when there is one
    (VisionZip's CLIP rule), else the attention each token receives averaged over heads and queries (its
    rule for SigLIP)."""
    frames, tokens, _ = layer_input.shape
    rows = Rows(layer_input)
    normed = anatomy.norm1(parts, layer_input)
    shape = (frames, tokens, parts.heads, parts.head_dim)
    q = anatomy.queries(parts, normed, rows).view(shape).transpose(1, 2).float()
    k = anatomy.keys(parts, normed, rows).view(shape).transpose(1, 2).float()
    probs = torch.softmax((q @ k.transpose(-1, -2)) * parts.scaling, dim=-1)  # [F, H, N, N]
    received = probs[:, :, 0, prefix_tokens:].mean(1) if prefix_tokens else probs.mean(dim=(1, 2))
    return received, k.mean(1)[:, prefix_tokens:]
