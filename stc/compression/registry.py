"""Name -> compression method. One table, read lazily, so importing it pulls in no method's code.

Adding a method = one module with a `CompressionMethod` subclass + one line here. The names are the
keys of a compression spec (`configs/compression/*.yaml`: `cacher: {...}`, `tome: {...}`) and of
`compression=<name>` on the command line. The table is a constant: nothing registers at import time,
so there is no process-wide mutable state to get out of order.
"""

from __future__ import annotations

import importlib

from stc.compression.base import CompressionMethod

METHODS: dict[str, str] = {
    # STC (this paper)
    "cacher": "stc.compression.stc_methods:CacherMethod",
    "pruner": "stc.compression.stc_methods:PrunerMethod",
    # baselines (stc/baselines/, docs/baselines/README.md)
    "random_drop": "stc.baselines.random_drop:RandomDropMethod",
    "visionzip": "stc.baselines.visionzip:VisionZipMethod",
    "vidcom2": "stc.baselines.vidcom2:VidCom2Method",
    "tome": "stc.baselines.tome:ToMeMethod",
    "dycoke_ttm": "stc.baselines.dycoke_ttm:DyCokeTTMMethod",
    "dycoke_kv": "stc.baselines.dycoke_kv:DyCokeKVMethod",
    "streamdycoke_ttm": "stc.baselines.streamdycoke_ttm:StreamDyCokeTTMMethod",
    "streamdycoke_cache": "stc.baselines.streamdycoke_cache:StreamDyCokeCacheMethod",
}


# Names of method combinations (the files of `configs/compression/` that list exactly these methods);
# a spec without an explicit `name` is labelled by the preset with the same method set.
PRESETS: dict[str, tuple[str, ...]] = {
    "none": (),
    "stc": ("cacher", "pruner"),
    "stc_cacher": ("cacher",),
    "stc_pruner": ("pruner",),
    "dycoke": ("dycoke_ttm", "dycoke_kv"),
    "streamdycoke": ("streamdycoke_ttm", "streamdycoke_cache"),
}


def preset_label(methods) -> str:
    """Name of a method set: the preset with exactly this set ('stc' for {cacher, pruner}), else the
    largest presets it contains plus the remaining method names, joined by '+' ('stc_cacher+visionzip')."""
    enabled = list(dict.fromkeys(methods))
    for label, members in PRESETS.items():
        if set(members) == set(enabled):
            return label
    parts, remaining = [], set(enabled)
    for label, members in sorted(PRESETS.items(), key=lambda item: -len(item[1])):
        if members and set(members) <= remaining:
            parts.append(label)
            remaining -= set(members)
    return "+".join(parts + [name for name in enabled if name in remaining])


def list_methods() -> list[str]:
    return sorted(METHODS)


def method_class(name: str) -> type[CompressionMethod]:
    """The class registered under `name`; one clear error naming the known methods otherwise."""
    if name not in METHODS:
        raise KeyError(f"unknown compression method {name!r}; registered: {', '.join(list_methods())}")
    module, _, attr = METHODS[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, CompressionMethod)) or cls.name != name:
        raise TypeError(f"compression registry entry {name!r} -> {METHODS[name]} is not a CompressionMethod named {name!r}")
    return cls
