"""ReKV host (LLaVA-OneVision + streaming KV store with per-layer frame retrieval), registered as "rekv".

    from frameworks.registry import build_host
    host = build_host("rekv", {"model_path": "/models/llava-onevision-qwen2-7b-ov-hf"}, {"pruner": {"tokens_per_frame": 64}})
    host = build_host("rekv", {"preset": "7b", "dtype": "bfloat16"}, spec)   # random weights (latency)
"""

from __future__ import annotations

from typing import Any, Mapping

from frameworks.common.llava_loading import build_random_llava_onevision, load_llava_onevision
from frameworks.rekv.config import ReKVConfig
from frameworks.rekv.host import ReKVHost
from stc.compression import CompressionSpec

__all__ = ["ReKVConfig", "ReKVHost", "build_rekv_host"]


def build_rekv_host(config: Mapping[str, Any], compression: CompressionSpec) -> ReKVHost:
    """Factory used by `build_host("rekv", mapping, compression)`: local checkpoint if `model_path`, else random
    weights at the released size `preset`."""
    settings = ReKVConfig.from_mapping(config)
    if settings.model_path:
        loaded = load_llava_onevision(settings.model_path, settings.dtype, settings.device)
    else:
        from frameworks.common.model_sizes import llava_onevision_config

        loaded = build_random_llava_onevision(llava_onevision_config(settings.preset), settings.dtype,
                                              settings.device, seed=settings.seed)
    return ReKVHost(loaded, settings, compression)
