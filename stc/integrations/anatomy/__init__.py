"""ViT anatomy adapters: one per family, resolved from the encoder layer's class.

    anatomy = resolve_anatomy(layer)          # SiglipClipAnatomy(), Dinov2Anatomy(), Qwen2VLAnatomy()
    attach_cacher(tower, config, anatomy=MyAnatomy())   # or give one explicitly

Adding a family = a `LayerAnatomy` subclass in its own file + one line in `FAMILIES`. Resolution
looks for a family whose `layer_class_names` appear in the layer's MRO, then falls back to a
structural match (layers that have SigLIP/CLIP's part names), so same-anatomy towers keep working.
"""

from __future__ import annotations

import importlib

from torch import nn

from stc.integrations.anatomy.base import LayerAnatomy, LayerParts, Rows, attention_interface

FAMILIES: dict[str, str] = {
    "siglip_clip": "stc.integrations.anatomy.siglip_clip:SiglipClipAnatomy",
    "dinov2": "stc.integrations.anatomy.dinov2:Dinov2Anatomy",
    "qwen2_vl": "stc.integrations.anatomy.qwen2_vl:Qwen2VLAnatomy",
}


def family_class(name: str) -> type[LayerAnatomy]:
    if name not in FAMILIES:
        raise KeyError(f"unknown ViT family {name!r}; known: {', '.join(sorted(FAMILIES))}")
    module, _, attr = FAMILIES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def anatomy_class_for(layer: nn.Module) -> type[LayerAnatomy] | None:
    """The family of `layer` (by class, then by structure), or None."""
    classes = [family_class(name) for name in FAMILIES]
    for cls in classes:
        if cls.matches(layer):
            return cls
    for cls in classes:
        if cls.has_parts(layer):
            return cls
    return None


def resolve_anatomy(layer: nn.Module) -> LayerAnatomy:
    cls = anatomy_class_for(layer)
    if cls is None:
        raise ValueError(f"STC-Cacher: no ViT anatomy adapter for {type(layer).__name__}; known families: "
                         f"{', '.join(sorted(FAMILIES))} (pass anatomy=... to attach_cacher for another)")
    return cls()


__all__ = ["FAMILIES", "LayerAnatomy", "LayerParts", "Rows", "anatomy_class_for", "attention_interface",
           "family_class", "resolve_anatomy"]
