"""Name -> host factory: the one table of hosts. The keys are the strings of `framework=<name>`.

Entries are "module:function" strings imported on first use, so importing the registry never pulls in
transformers. A factory has the signature
``factory(config: Mapping[str, Any], compression: CompressionSpec) -> StreamingVideoLLM``.
Adding a host = a package in `frameworks/` with a factory + one line here. The table is a constant:
nothing registers itself at import time.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

from frameworks.protocol import StreamingVideoLLM
from stc.compression import CompressionSpec

HostFactory = Callable[[Mapping[str, Any], CompressionSpec], StreamingVideoLLM]

HOSTS: dict[str, str] = {
    "toy": "frameworks.toy:build_toy",
    "rekv": "frameworks.rekv:build_rekv_host",
    "dispider": "frameworks.dispider:build_dispider_host",
    "streamforest": "frameworks.streamforest:build_streamforest_host",
    "livecc": "frameworks.livecc:build_livecc_host",
}


def list_hosts() -> list[str]:
    return sorted(HOSTS)


def host_factory(name: str) -> HostFactory:
    """The factory registered under `name`; one clear error naming the known hosts otherwise."""
    if name not in HOSTS:
        raise KeyError(f"unknown framework {name!r}; available: {', '.join(list_hosts())}")
    module, _, attr = HOSTS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def build_host(name: str, config: Mapping[str, Any] | None = None, compression: Any = None) -> StreamingVideoLLM:
    """Instantiate host `name` with its config mapping and its compression: a `CompressionSpec`, a
    mapping as composed from `configs/compression/`, an `STCConfig`, or None (no compression)."""
    return host_factory(name)(dict(config or {}), CompressionSpec.coerce(compression))
