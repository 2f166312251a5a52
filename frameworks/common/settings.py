"""Host settings from the mapping `build_host` passes (a composed `configs/framework/*.yaml`).

Every host keeps its knobs in a frozen dataclass that validates itself; this one function turns the
mapping into it, so all hosts reject unknown keys with the same one-line error; `check_settings` gives
the invalid values the same one line too."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Iterable, Mapping, TypeVar

T = TypeVar("T")


def settings_from_mapping(cls: type[T], mapping: Mapping[str, Any] | None, host: str,
                          ignore: Iterable[str] = ("name",)) -> T:
    """`cls(**mapping)` without the `ignore`d keys (the Hydra group's `name`, keys another layer
    consumes); unknown keys are one ValueError naming them and the known ones."""
    skip = set(ignore)
    data = {k: v for k, v in dict(mapping or {}).items() if k not in skip}
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {host} setting(s) {unknown}; known: {sorted(known)}")
    return cls(**data)


def check_settings(settings: Any, host: str, checks: Iterable[tuple[str, Any, str]]) -> None:
    """Raise one ValueError for the first (field, ok, rule) whose `ok` is falsy:
    "invalid <host> setting <field>=<value>: <rule>"."""
    for name, ok, rule in checks:
        if not ok:
            raise ValueError(f"invalid {host} setting {name}={getattr(settings, name)!r}: {rule}")
