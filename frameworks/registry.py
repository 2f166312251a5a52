"""Name -> host factory registry. The keys are the strings used in Hydra configs (`framework=rekv`).

Host modules register themselves with `@register_host("name")` when imported; `build_host` imports the
module lazily (listed in `_HOST_MODULES`) so that importing the registry never pulls in transformers.
A factory has the signature ``factory(config: Mapping[str, Any], stc: STCConfig) -> StreamingVideoLLM``.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

from frameworks.protocol import StreamingVideoLLM
from stc.config import STCConfig

HostFactory = Callable[[Mapping[str, Any], STCConfig], StreamingVideoLLM]

_HOSTS: dict[str, HostFactory] = {}
_HOST_MODULES = {
    "toy": "frameworks.toy",
    "rekv": "frameworks.rekv",
}


def register_host(name: str) -> Callable[[HostFactory], HostFactory]:
    def add(factory: HostFactory) -> HostFactory:
        if name in _HOSTS and _HOSTS[name] is not factory:
            raise KeyError(f"host {name!r} already registered to {_HOSTS[name].__qualname__}")
        _HOSTS[name] = factory
        return factory

    return add


def list_hosts() -> list[str]:
    return sorted(set(_HOSTS) | set(_HOST_MODULES))


def host_factory(name: str) -> HostFactory:
    """The registered factory of host `name` (its module is imported on first use). The speed harness
    reads what the factory declares (`frameworks.speed`) before building anything."""
    if name not in _HOSTS and name in _HOST_MODULES:
        importlib.import_module(_HOST_MODULES[name])
    if name not in _HOSTS:
        raise KeyError(f"unknown framework {name!r}; available: {list_hosts()}")
    return _HOSTS[name]


def build_host(name: str, config: Mapping[str, Any] | None = None, stc: STCConfig | None = None) -> StreamingVideoLLM:
    """Instantiate host `name` with its config mapping and the STC compression settings."""
    return host_factory(name)(dict(config or {}), stc or STCConfig())
