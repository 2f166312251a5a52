"""Compose a SpeedConfig without Hydra (PyYAML only): the same yaml files, the same `key=value` overrides.

Why: the demo and the GPU script must run where hydra-core is absent (the H100 image has no Hydra);
results must not depend on which entry point built the config. Semantics follow the Hydra app:
base `configs/speed/speed.yaml` (minus `defaults`/`hydra`), then the preset file (a `_global_` package),
then overrides `a.b=value` (value parsed as YAML: `[2,4]`, `null`, `0.25`, `true`).

    cfg = compose("llava_ov_7b", ["frames=16", "stc.cache_interval=4"], out_dir="results/speed/x")
"""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import yaml

from speed_benchmark.config import SpeedConfig, SpeedConfigError, from_mapping

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "speed"


def available_presets(config_dir: Path = CONFIG_DIR) -> list[str]:
    return sorted(p.stem for p in (config_dir / "preset").glob("*.yaml"))


def _merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _set(tree: dict, dotted: str, value: Any) -> None:
    node = tree
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SpeedConfigError(f"invalid override {dotted}={value!r}: {part} is not a group")
    node[leaf] = value


def base_mapping(preset: str, config_dir: Path = CONFIG_DIR) -> dict:
    """speed.yaml + the preset file, as a plain dict (interpolations not resolved)."""
    path = config_dir / "preset" / f"{preset}.yaml"
    if not path.is_file():
        raise SpeedConfigError(f"invalid speed setting preset={preset!r}: no {path.name} in {path.parent}; "
                               f"available: {available_presets(config_dir)}")
    base = yaml.safe_load((config_dir / "speed.yaml").read_text())
    base = {k: v for k, v in base.items() if k not in ("defaults", "hydra")}
    return _merge(base, yaml.safe_load(path.read_text()) or {})


def compose(preset: str, overrides: Sequence[str] = (), out_dir: str | None = None,
            config_dir: Path = CONFIG_DIR) -> SpeedConfig:
    """SpeedConfig for `preset` with `key=value` overrides; `out_dir` default as in the Hydra app."""
    tree = base_mapping(preset, config_dir)
    for item in overrides:
        if "=" not in item:
            raise SpeedConfigError(f"invalid override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        if key == "preset":
            raise SpeedConfigError("pass the preset as the first argument, not as an override")
        _set(tree, key.lstrip("+"), yaml.safe_load(raw) if raw else "")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    if out_dir is not None:
        tree["out_dir"] = out_dir
    elif "${" in str(tree.get("out_dir", "")):
        tree["out_dir"] = f"results/speed/{stamp}-{tree['preset']['name']}"
    return from_mapping(tree)


def split_argv(argv: Sequence[str]) -> tuple[str, list[str]]:
    """`preset=X a=b ...` -> ("X", ["a=b", ...]); preset defaults to "tiny" like the Hydra app."""
    preset, rest = "tiny", []
    for item in argv:
        if item.startswith("preset="):
            preset = item.split("=", 1)[1]
        else:
            rest.append(item)
    return preset, rest
