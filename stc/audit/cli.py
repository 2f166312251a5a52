"""`key=value` arguments of `python -m stc.audit` (the style of the project's Hydra entry points,
without Hydra: `stc/` stays importable without it). Keys: model, video, out (required); fps, max_frames,
size, chunk, dtype, device; `stc.<field>` for any `CacherConfig` field (stc.update_ratio,
stc.cache_interval, stc.refresh, stc.change_tau, ...). A bad key or value raises `AuditArgumentError`
with one line naming it."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Optional

from stc.config import CacherConfig


class AuditArgumentError(ValueError):
    pass


@dataclass(frozen=True)
class AuditConfig:
    model: str
    video: str
    out: str
    fps: float = 2.0
    max_frames: Optional[int] = None
    size: Optional[int] = None  # input resolution; default per family (DINOv2: 224, else config.image_size)
    chunk: int = 8  # frames per tower call in both passes (results do not depend on it)
    dtype: str = "float32"
    device: str = "cpu"
    stc: CacherConfig = field(default_factory=lambda: CacherConfig(update_ratio=0.25, cache_interval=4))


_TOP = {"model": str, "video": str, "out": str, "fps": float, "max_frames": Optional[int], "size": Optional[int],
        "chunk": int, "dtype": str, "device": str}
DTYPES = ("float32", "float64", "bfloat16", "float16")


def _cast(key: str, raw: str, kind):
    if typing.get_origin(kind) is typing.Union:  # Optional[x]
        if raw.lower() in ("null", "none", ""):
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        return kind(raw)
    except ValueError:
        raise AuditArgumentError(f"{key}={raw!r}: expected {getattr(kind, '__name__', kind)}") from None


def parse_args(argv: list[str]) -> AuditConfig:
    top: dict = {}
    stc: dict = {}
    hints = typing.get_type_hints(CacherConfig)
    for arg in argv:
        key, sep, raw = arg.partition("=")
        if not sep:
            raise AuditArgumentError(f"{arg!r}: expected key=value")
        if key.startswith("stc."):
            name = key[4:]
            if name not in hints:
                raise AuditArgumentError(f"unknown key {key}; stc.* keys: {', '.join(sorted(hints))}")
            stc[name] = _cast(key, raw, hints[name])
        elif key in _TOP:
            top[key] = _cast(key, raw, _TOP[key])
        else:
            raise AuditArgumentError(f"unknown key {key}; known: {', '.join(list(_TOP) + ['stc.<CacherConfig field>'])}")
    for required in ("model", "video", "out"):
        if required not in top:
            raise AuditArgumentError(f"missing key {required}=...")
    if top.get("fps", 2.0) <= 0:
        raise AuditArgumentError(f"fps={top['fps']}: must be > 0")
    if top.get("chunk", 8) < 1:
        raise AuditArgumentError(f"chunk={top['chunk']}: must be >= 1")
    if top.get("max_frames") is not None and top["max_frames"] < 1:
        raise AuditArgumentError(f"max_frames={top['max_frames']}: must be >= 1")
    if top.get("dtype", "float32") not in DTYPES:
        raise AuditArgumentError(f"dtype={top['dtype']!r}: must be one of {DTYPES}")
    try:
        cacher = dataclasses.replace(AuditConfig.__dataclass_fields__["stc"].default_factory(), **stc)
    except ValueError as error:  # CacherConfig names the knob
        raise AuditArgumentError(str(error).replace("invalid STC setting ", "stc.")) from None
    return AuditConfig(stc=cacher, **top)
