"""Compression methods behind one contract, a registry of them, and specs that combine them.

    from stc.compression import CompressionSpec
    spec = CompressionSpec.from_mapping({"cacher": {"cache_interval": 4}, "pruner": {"tokens_per_frame": 49}})
    methods = spec.build()        # per-stream objects; hosts use frameworks.common.compression

See `base.py` for the stages and the contract, `registry.py` to add a method.
"""

from stc.compression.base import CompressionMethod, ContextMethod, Stage, TokenMethod, TokenSide, VisionMethod
from stc.compression.registry import METHODS, PRESETS, list_methods, method_class, preset_label
from stc.compression.spec import CompressionSpec, label_of, make_config

__all__ = [
    "METHODS",
    "PRESETS",
    "CompressionMethod",
    "CompressionSpec",
    "ContextMethod",
    "Stage",
    "TokenMethod",
    "TokenSide",
    "VisionMethod",
    "list_methods",
    "label_of",
    "make_config",
    "preset_label",
    "method_class",
]
