"""SigLIP and CLIP encoder layers (also LLaVA-OneVision's tower, and any layer with the same parts):
separate q/k/v/out projections, LayerNorm 1/2, fc1-act-fc2 MLP, no layer scale, no rotary. CLIP has a
CLS token (one prefix token) and a `pre_layrnorm` that runs before the layers (outside the cacher's
reach, so nothing to do here). Everything is the base class's default."""

from stc.integrations.anatomy.base import LayerAnatomy


class SiglipClipAnatomy(LayerAnatomy):
    family = "siglip_clip"
    layer_class_names = ("SiglipEncoderLayer", "Siglip2EncoderLayer", "CLIPEncoderLayer")
