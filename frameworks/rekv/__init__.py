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
from frameworks.speed import SpeedRequest, declares_speed_config
from stc.compression import CompressionSpec

__all__ = ["ReKVConfig", "ReKVHost", "build_rekv_host", "rekv_speed_config"]

# frameworks/common/model_sizes.py names of LLaVA-OneVision -> ReKVConfig.preset
_SPEED_SIZES = {"llava_ov_7b": "7b", "llava_ov_0_5b": "0.5b", "llava_ov_tiny": "tiny"}


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


@declares_speed_config(build_rekv_host)
def rekv_speed_config(request: SpeedRequest) -> dict[str, Any]:
    """Settings for `build_host("rekv", ...)` in the speed harness's end-to-end case. ReKV runs
    LLaVA-OneVision only: any other model is refused with the reason (the harness records the skip)."""
    settings = {"device": request.device, "dtype": request.dtype, "seed": request.seed,
                "frames_per_chunk": request.frames_per_chunk}
    if request.model_path:
        return dict(settings, model_path=request.model_path)
    if request.model_config not in _SPEED_SIZES:
        model = request.model_config or f"{request.vision} + {request.text}"
        raise ValueError(f"the ReKV host runs LLaVA-OneVision ({sorted(_SPEED_SIZES)}); {model!r} is not one")
    return dict(settings, preset=_SPEED_SIZES[request.model_config])
