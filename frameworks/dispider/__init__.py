"""Dispider host (CLIP-L/14 + Qwen2-1.5B compressor + Qwen2-7B reaction LLM), registered as "dispider".

    from frameworks.registry import build_host
    host = build_host("dispider", {"model_path": "/models/Dispider"}, {"cacher": {...}})
    host = build_host("dispider", {"random_weights": True, "preset": "released"}, spec)   # latency
"""

from __future__ import annotations

from typing import Any, Mapping

from frameworks.dispider.config import DispiderSettings
from frameworks.dispider.host import DispiderHost
from frameworks.dispider.loading import build_random_dispider, load_dispider
from frameworks.dispider.model import DispiderArchitecture
from frameworks.speed import SpeedRequest, declares_speed_config, released_model_settings
from stc.compression import CompressionSpec

__all__ = ["DispiderArchitecture", "DispiderHost", "DispiderSettings", "build_dispider_host", "load_host_model"]


def load_host_model(settings: DispiderSettings):
    """Local checkpoint if `model_path`, else random weights at the `preset` sizes."""
    if settings.model_path:
        return load_dispider(settings.model_path, settings.dtype, settings.device)
    return build_random_dispider(DispiderArchitecture.from_sizes(settings.preset), settings.dtype, settings.device,
                                 seed=settings.seed)


def build_dispider_host(config: Mapping[str, Any], compression: CompressionSpec) -> DispiderHost:
    """Factory used by `build_host("dispider", mapping, compression)`."""
    settings = DispiderSettings.from_mapping(config)
    return DispiderHost(load_host_model(settings), settings, compression)


_SPEED_MODELS = {("clip_vit_l14_224", "qwen2_1_5b"): "released"}


@declares_speed_config(build_dispider_host)
def dispider_speed_config(request: SpeedRequest) -> dict[str, Any]:
    """Settings for `build_host("dispider", ...)` in the speed harness's end-to-end case (CLIP-L/14 +
    the Qwen2-1.5B compressor + the Qwen2-7B reaction model at the released sizes, random weights)."""
    return released_model_settings(request, _SPEED_MODELS, "Dispider host runs CLIP-L/14 + Qwen2-1.5B + Qwen2-7B")
