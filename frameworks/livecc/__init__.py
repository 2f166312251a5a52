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
