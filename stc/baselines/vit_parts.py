"""A tiny local accessor for the parts of HF SigLIP / CLIP vision towers that the baselines read.

ToMe patches the encoder layers and VisionZip's side information recomputes one layer's attention; both
read the layer anatomy only through `encoder_of` / `layer_parts`, so they can move onto the project's
ViT anatomy adapters (stc.integrations) by replacing these two functions.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn


def encoder_of(tower: nn.Module) -> tuple[nn.Module, bool]:
    """(encoder module with `.layers`, whether the embeddings prepend a CLS token)."""
    model = getattr(tower, "vision_model", tower)
    encoder = getattr(model, "encoder", None)
    if encoder is None or not hasattr(encoder, "layers"):
        raise TypeError(f"{type(tower).__name__} is not a SigLIP/CLIP vision tower (no vision_model.encoder.layers)")
    return encoder, hasattr(getattr(model, "embeddings", None), "class_embedding")


def layer_parts(layer: nn.Module) -> SimpleNamespace:
    """The sub-modules of one pre-LN encoder layer (SigLIP and CLIP share the anatomy)."""
    attn = layer.self_attn
    return SimpleNamespace(norm1=layer.layer_norm1, q=attn.q_proj, k=attn.k_proj, v=attn.v_proj, out=attn.out_proj,
                           norm2=layer.layer_norm2, mlp=layer.mlp, heads=attn.num_heads, head_dim=attn.head_dim,
                           scale=attn.scale)


@torch.no_grad()
def layer_attention(layer: nn.Module, layer_input: torch.Tensor, has_cls: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention received and head-averaged keys of one encoder layer, patch tokens only.

    layer_input [F, N, D] (the hidden states entering the layer) -> (received [F, P], keys [F, P, head_dim])
    with P = N - has_cls: the CLS row averaged over heads when there is a CLS token (VisionZip's CLIP rule),
    else the attention each token receives averaged over heads and queries (its rule for SigLIP)."""
    parts = layer_parts(layer)
    frames, tokens, _ = layer_input.shape
    normed = parts.norm1(layer_input)
    shape = (frames, tokens, parts.heads, parts.head_dim)
    q = parts.q(normed).view(shape).transpose(1, 2).float()
    k = parts.k(normed).view(shape).transpose(1, 2).float()
    probs = torch.softmax((q @ k.transpose(-1, -2)) * parts.scale, dim=-1)  # [F, H, N, N]
    first = int(has_cls)
    received = probs[:, :, 0, first:].mean(1) if has_cls else probs.mean(dim=(1, 2))
    return received, k.mean(1)[:, first:]
