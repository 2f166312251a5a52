"""StreamForest host (SigLIP-26 + Persistent Event Memory Forest + Qwen2-7B), registered as "streamforest".

    from frameworks.registry import build_host
    host = build_host("streamforest", {"model_path": "/models/StreamForest-Qwen2-7B"}, {"cacher": {...}})
    host = build_host("streamforest", {"preset": "7b", "random_weights": True}, spec)   # latency runs
"""

from __future__ import annotations

from typing import Any, Mapping

from frameworks.streamforest.config import StreamForestConfig
from frameworks.streamforest.host import StreamForestHost
from frameworks.streamforest.loading import build_random, load_streamforest
from frameworks.streamforest.memory import EventMemoryForest, MemorySettings
from frameworks.streamforest.model import StreamForestModel, streamforest_sizes
from frameworks.speed import SpeedRequest, declares_speed_config, released_model_settings
from stc.compression import CompressionSpec

__all__ = ["EventMemoryForest", "MemorySettings", "StreamForestConfig", "StreamForestHost", "StreamForestModel",
           "build_streamforest_host", "streamforest_sizes"]


def build_streamforest_host(config: Mapping[str, Any], compression: CompressionSpec) -> StreamForestHost:
    """Factory used by `build_host("streamforest", mapping, compression)`: the local checkpoint at
    `model_path`, else random weights at the released size `preset`."""
    settings = StreamForestConfig.from_mapping(config)
    if settings.model_path:
        loaded, _ = load_streamforest(settings.model_path, settings.dtype, settings.device)
    else:
        loaded = build_random(streamforest_sizes(settings.preset), settings.dtype, settings.device, seed=settings.seed)
    return StreamForestHost(loaded, settings, compression)


# speed presets (configs/speed/preset/) whose model this host builds -> its random-weight `preset`
_SPEED_MODELS = {("siglip_so400m", "qwen2_7b"): "7b"}


@declares_speed_config(build_streamforest_host)
def streamforest_speed_config(request: SpeedRequest) -> dict[str, Any]:
    """Settings for `build_host("streamforest", ...)` in the speed harness's end-to-end case (SigLIP-26 +
    Qwen2-7B at the released size, random weights, or a local checkpoint)."""
    return released_model_settings(request, _SPEED_MODELS, "StreamForest host runs SigLIP-so400m + Qwen2-7B")
