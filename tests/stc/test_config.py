"""Knob validation, env-variable compatibility, FLOP model."""

import pytest

from stc import CacherConfig, PrunerConfig, STCConfig, cacher_flop_fraction, selective_fraction


@pytest.mark.parametrize(
    "factory,knob",
    [
        (lambda: CacherConfig(update_ratio=0), "update_ratio"),
        (lambda: CacherConfig(update_ratio=1.5), "update_ratio"),
        (lambda: CacherConfig(cache_interval=0), "cache_interval"),
        (lambda: CacherConfig(metric="manhattan"), "metric"),
        (lambda: CacherConfig(selection_feature="query"), "selection_feature"),
        (lambda: PrunerConfig(tokens_per_frame=0), "tokens_per_frame"),
        (lambda: PrunerConfig(strategy="random"), "strategy"),
        (lambda: PrunerConfig(history_window=0), "history_window"),
        (lambda: PrunerConfig(layout="grid_newline"), "grid"),
    ],
)
def test_invalid_knobs_name_the_knob(factory, knob):
    with pytest.raises(ValueError, match=rf"invalid STC setting {knob}="):
        factory()


def test_tokens_to_update_is_floor_clamped():
    assert CacherConfig(update_ratio=0.25).tokens_to_update(729) == 182
    assert CacherConfig(update_ratio=0.001).tokens_to_update(729) == 1
    assert CacherConfig(update_ratio=1.0).tokens_to_update(729) == 729


def test_from_env_reads_upstream_variables_and_explicit_values_win():
    env = {"STC_PATCH_VISION": "1", "STC_UPDATE_TOKEN_RATIO": "0.3", "STC_CACHE_INTERVAL": "4",
           "STC_TOKEN_PER_FRAME": "60", "STC_CUDA_GRAPH": "true"}
    cfg = STCConfig.from_env(env)
    assert cfg.cacher == CacherConfig(update_ratio=0.3, cache_interval=4, cuda_graph=True)
    assert cfg.pruner.tokens_per_frame == 60
    cfg = STCConfig.from_env(env, update_ratio=0.5, tokens_per_frame=49)
    assert cfg.cacher.update_ratio == 0.5 and cfg.cacher.cache_interval == 4 and cfg.pruner.tokens_per_frame == 49
    assert STCConfig.from_env({"STC_PATCH_VISION": "0"}) == STCConfig()


def test_from_env_rejects_garbage():
    with pytest.raises(ValueError, match="STC_CACHE_INTERVAL"):
        STCConfig.from_env({"STC_PATCH_VISION": "1", "STC_CACHE_INTERVAL": "two"})
    with pytest.raises(ValueError, match="STC_PATCH_VISION"):
        STCConfig.from_env({"STC_PATCH_VISION": "maybe"})
    with pytest.raises(ValueError, match="invalid STC setting cache_interval=0"):
        STCConfig.from_env({"STC_PATCH_VISION": "1", "STC_CACHE_INTERVAL": "0"})
    with pytest.raises(ValueError, match="unknown STC setting"):
        STCConfig.from_env({}, update_rate=0.3)


def test_flop_model_matches_the_published_table():
    siglip = dict(width=1152, mlp_width=4304, num_tokens=729)  # stc-method.md §2.8
    assert selective_fraction(0.25, **siglip) == pytest.approx(0.309, abs=1e-3)
    assert cacher_flop_fraction(2, 0.25, **siglip) == pytest.approx(0.654, abs=1e-3)
    assert cacher_flop_fraction(4, 0.25, **siglip) == pytest.approx(0.482, abs=1e-3)
    assert cacher_flop_fraction(4, 0.15, **siglip) == pytest.approx(0.413, abs=1e-3)
    assert cacher_flop_fraction(1, 0.25, **siglip) == 1.0
