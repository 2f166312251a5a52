"""ReKV host (LLaVA-OneVision + streaming KV store with per-layer frame retrieval), registered as "rekv".

    from frameworks.registry import build_host
    host = build_host("rekv", {"model_path": "/models/llava-onevision-qwen2-7b-ov-hf"}, STCConfig(...))
    host = build_host("rekv", {"preset": "7b", "dtype": "bfloat16"}, stc)   # random weights (latency)
"""

from __future__ import annotations

from typing import Any, Mapping

from frameworks.common.llava_loading import build_random_llava_onevision, load_llava_onevision
from frameworks.registry import register_host
from frameworks.rekv.config import ReKVConfig
from frameworks.rekv.host import ReKVHost
from stc.config import STCConfig

__all__ = ["ReKVConfig", "ReKVHost", "build_rekv_host"]


@register_host("rekv")
def build_rekv_host(config: Mapping[str, Any], stc: STCConfig) -> ReKVHost:
    """Factory used by `build_host("rekv", mapping, stc)`: local checkpoint if `model_path`, else random
    weights at the released size `preset`."""
    settings = ReKVConfig.from_mapping(config)
    if settings.model_path:
        loaded = load_llava_onevision(settings.model_path, settings.dtype, settings.device)
    else:
        from frameworks.common.model_sizes import llava_onevision_config

        loaded = build_random_llava_onevision(llava_onevision_config(settings.preset), settings.dtype,
                                              settings.device, seed=settings.seed)
    return ReKVHost(loaded, settings, stc)
