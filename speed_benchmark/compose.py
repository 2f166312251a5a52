"""Compose a SpeedConfig from configs/speed/ with Hydra's compose API (no CLI, no working-dir change).

The demo, the tests and scripts build configs the same way the Hydra app does, so a run's results never
depend on which entry point built its config:

    cfg = compose("llava_ov_7b", ["frames=16", "stc.cache_interval=4"], out_dir="results/speed/x")
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from speed_benchmark.config import SpeedConfig, SpeedConfigError, from_mapping, register_schemas

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "speed"


def available_presets(config_dir: Path = CONFIG_DIR) -> list[str]:
    return sorted(p.stem for p in (config_dir / "preset").glob("*.yaml"))


def compose(preset: str, overrides: Sequence[str] = (), out_dir: str | None = None,
            config_dir: Path = CONFIG_DIR) -> SpeedConfig:
    """SpeedConfig for `preset` with `key=value` overrides; `out_dir` default as in the Hydra app."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if preset not in available_presets(config_dir):
        raise SpeedConfigError(f"invalid speed setting preset={preset!r}: available: {available_presets(config_dir)}")
    if any(item.split("=", 1)[0] == "preset" for item in overrides):
        raise SpeedConfigError("pass the preset as the first argument, not as an override")
    register_schemas()
    extra = [f"out_dir={out_dir}"] if out_dir is not None else []
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base=None):
            dcfg = hydra_compose(config_name="speed", overrides=[f"preset={preset}", *overrides, *extra])
            tree = OmegaConf.to_container(dcfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as error:
        raise SpeedConfigError(f"invalid speed settings {list(overrides)}: {error}") from None
    tree.pop("hydra", None)
    return from_mapping(tree)
