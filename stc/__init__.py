"""STC: Streaming Token Compression for streaming video LLMs (framework-agnostic).

    from stc import CacherConfig, PrunerConfig, attach_cacher, STCPruner

    handle = attach_cacher(vision_tower, CacherConfig(update_ratio=0.25, cache_interval=2))
    pruner = STCPruner(PrunerConfig(tokens_per_frame=64))

`stc` depends on torch only; `stc.integrations` additionally uses transformers' attention registry
when the patched model is a transformers model. It never imports `frameworks` or `evaluation`.
"""

from stc.cacher.state import CacherState, CacherStats
from stc.config import CacherConfig, PrunerConfig, STCConfig
from stc.flops import cacher_flop_fraction, selective_fraction
from stc.integrations.hf_vit import CacherHandle, attach_cacher
from stc.pruner.pruner import STCPruner

__all__ = [
    "CacherConfig",
    "CacherHandle",
    "CacherState",
    "CacherStats",
    "PrunerConfig",
    "STCConfig",
    "STCPruner",
    "attach_cacher",
    "cacher_flop_fraction",
    "selective_fraction",
]
