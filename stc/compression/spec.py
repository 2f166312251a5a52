"""A compression spec: which methods run, with which typed configs, in pipeline order.

    spec = CompressionSpec.from_mapping({"name": "stc", "cacher": {"update_ratio": 0.25}, "pruner": None})
    spec.configs          # {"cacher": CacherConfig(update_ratio=0.25, ...)}   (null = switched off)
    methods = spec.build()   # fresh per-stream method objects, ordered vision -> tokens -> context

The mapping is what Hydra composes from `configs/compression/` (one or several files: `compression=stc`
or `compression=[stc_cacher,visionzip]`); every key but `name` is a registered method. Validation
happens here, once, with errors that name the key (`compression.tome.budget`).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from stc.compression.base import CompressionMethod, Stage
from stc.compression.registry import list_methods, method_class, preset_label

_STAGE_ORDER = {Stage.VISION: 0, Stage.TOKENS: 1, Stage.CONTEXT: 2}


@dataclass(frozen=True)
class CompressionSpec:
    """Method name -> frozen config, for the methods that are switched on. `label` names the spec in
    reports: an explicit `name`, else the preset with this method set (`stc`), else 'a+b'."""

    configs: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self):
        for name, config in self.configs.items():
            cls = method_class(name)
            if not isinstance(config, cls.config_class):
                raise TypeError(f"compression.{name}: expected {cls.config_class.__name__}, got {type(config).__name__}")
        if not self.label:
            object.__setattr__(self, "label", preset_label(self.configs))

    @classmethod
    def from_mapping(cls, mapping: Optional[Mapping[str, Any]]) -> "CompressionSpec":
        """Build from a plain mapping (a composed Hydra group, possibly several files merged:
        `compression=[stc_cacher,visionzip]`); errors name the offending key."""
        mapping = dict(mapping or {})
        mapping.pop("defaults", None)  # a group file read as plain YAML still carries Hydra's defaults list
        label = str(mapping.pop("name", "") or "")
        configs = {}
        for name, values in mapping.items():
            if name not in list_methods():
                raise ValueError(f"compression.{name}: unknown compression method; registered: {', '.join(list_methods())}")
            if values is None or values is False:
                continue
            configs[name] = make_config(method_class(name).config_class, values, f"compression.{name}")
        return cls(configs=configs, label=label)

    @classmethod
    def coerce(cls, value: Any) -> "CompressionSpec":
        """Accept a spec, a mapping, None, or anything with `cacher`/`pruner` attributes (STCConfig)."""
        if isinstance(value, CompressionSpec):
            return value
        if value is None:
            return cls()
        if isinstance(value, Mapping):
            return cls.from_mapping(value)
        if hasattr(value, "cacher") and hasattr(value, "pruner"):
            configs = {name: getattr(value, name) for name in ("cacher", "pruner") if getattr(value, name) is not None}
            return cls(configs=configs)
        raise TypeError(f"cannot build a compression spec from {type(value).__name__}")

    def get(self, name: str, default=None):
        return self.configs.get(name, default)

    def __contains__(self, name: str) -> bool:
        return name in self.configs

    def build(self) -> list[CompressionMethod]:
        """Fresh method objects (one stream's worth), ordered by stage, then as listed."""
        methods = [method_class(name)(config) for name, config in self.configs.items()]
        return sorted(methods, key=lambda m: _STAGE_ORDER[m.stage])

    def settings(self) -> dict[str, Any]:
        """Flat, JSON-serialisable settings for reports: {'cacher.update_ratio': 0.25, ...}."""
        flat = {}
        for name, config in self.configs.items():
            for key, value in dataclasses.asdict(config).items():
                flat[f"{name}.{key}"] = list(value) if isinstance(value, tuple) else value
        return flat


def label_of(mapping: Optional[Mapping[str, Any]]) -> str:
    """The report label of a compression mapping (Hydra resolver `compression_label`), WITHOUT
    validating it: run names are resolved before the settings are checked (with their own errors)."""
    mapping = dict(mapping or {})
    mapping.pop("defaults", None)
    name = mapping.pop("name", None)
    return str(name) if name else preset_label(key for key, value in mapping.items() if value not in (None, False))


def make_config(config_class: type, values: Mapping[str, Any], where: str):
    """`config_class(**values)` with lists turned into tuples where the field is a tuple, unknown keys
    and invalid values reported as one line naming `where.<field>`."""
    if dataclasses.is_dataclass(values):
        values = dataclasses.asdict(values)
    if not isinstance(values, Mapping):
        raise ValueError(f"{where}: expected a mapping of settings, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown setting; known: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(config_class)
    kwargs = {}
    for key, value in values.items():
        if isinstance(value, list) and "Tuple" in str(hints[key]) or isinstance(value, list) and "tuple" in str(hints[key]):
            value = tuple(value)
        kwargs[key] = value
    try:
        return config_class(**kwargs)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
