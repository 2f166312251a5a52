"""Integrations of STC with model libraries (transformers)."""

from stc.integrations.hf_vit import CacherHandle, attach_cacher, find_encoder_layers

__all__ = ["CacherHandle", "attach_cacher", "find_encoder_layers"]
