"""LiveCC host (stock Qwen2-VL-7B: per-second streaming turns, KV carry-over, OVO restricted answers),
registered as "livecc".

    from frameworks.registry import build_host
    host = build_host("livecc", {"model_path": "/models/LiveCC-7B-Instruct"}, {"pruner": {"tokens_per_frame": 96}})
    host = build_host("livecc", {"random_weights": True, "preset": "7b"}, None)   # random weights (latency)
"""

from __future__ import annotations

from typing import Any, Mapping

from frameworks.livecc.config import LiveCCConfig
from frameworks.livecc.host import LiveCCHost
from frameworks.livecc.loading import LoadedLiveCC, build_random_livecc, load_livecc
from frameworks.speed import SpeedRequest, declares_speed_config, released_model_settings
from stc.compression import CompressionSpec

__all__ = ["LiveCCConfig", "LiveCCHost", "LoadedLiveCC", "build_livecc_host", "build_random_livecc", "load_livecc"]


def build_livecc_host(config: Mapping[str, Any], compression: CompressionSpec) -> LiveCCHost:
    """Factory used by `build_host("livecc", mapping, compression)`: a local checkpoint if `model_path`, else
    random weights at the Qwen2-VL size `preset` (only with `random_weights: true`)."""
    settings = LiveCCConfig.from_mapping(config)
    if settings.model_path:
        loaded = load_livecc(settings.model_path, settings.dtype, settings.device)
    else:
        from frameworks.common.model_sizes import qwen2_vl_config

        loaded = build_random_livecc(qwen2_vl_config(settings.preset), settings.dtype, settings.device, settings.seed)
    return LiveCCHost(loaded, settings, compression)


_SPEED_MODELS = {"qwen2_vl_7b": "7b"}


@declares_speed_config(build_livecc_host)
def livecc_speed_config(request: SpeedRequest) -> dict[str, Any]:
    """Settings for `build_host("livecc", ...)` in the speed harness's end-to-end case (Qwen2-VL-7B at the
    released size, random weights, or a local checkpoint)."""
    return released_model_settings(request, _SPEED_MODELS, "LiveCC host runs Qwen2-VL-7B")
