"""User errors of the command-line entry points as ONE line, exit code 2.

`python -m evaluation`, `evaluation.score` and `evaluation.merge` all run their work inside
`user_errors()`: a validation error (bad override, unknown key, malformed annotation file, missing file,
wrong value) prints `error: <file/record/field/knob>: <problem>` on stderr and exits 2, so a user sees
what to fix instead of a 40-line traceback (and scripts can tell "you asked for something wrong" from a
crash). `HYDRA_FULL_ERROR=1` re-raises with the full traceback. Anything else (a bug) keeps its
traceback: hiding it would make it impossible to report.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Optional, Sequence

EXIT_USER_ERROR = 2


def full_errors() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR", "") not in ("", "0")


def _user_error_types() -> tuple:
    kinds: list = [ValueError, KeyError, OSError, LookupError]
    try:
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        kinds += [HydraException, OmegaConfBaseException]
    except ImportError:  # score/merge work without hydra installed
        pass
    return tuple(kinds)


def one_line(err: BaseException) -> str:
    """The error as one line: Hydra/OmegaConf errors reduced to the key and the problem."""
    key = getattr(err, "full_key", None) or getattr(err.__cause__, "full_key", None)
    if isinstance(err, KeyError) and err.args:
        text = str(err.args[0])
    else:
        text = str(err)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if type(err).__name__ == "MissingConfigException":
        first = lines[0] if lines else "config not found"
        options = [line for line in lines[2:] if not line.startswith(("Config search path", "provider="))]
        return f"{first}; available: {', '.join(options)}" if options else first
    cause = err.__cause__
    if key and cause is not None:
        problem = str(cause).splitlines()[0]
        if type(cause).__name__ == "ConfigAttributeError":
            return f"unknown setting {key!r} ({problem}); check the spelling, or add a new key with +{key}=..."
        return f"invalid value for {key!r}: {problem}"
    return " ".join(lines) if lines else type(err).__name__


def key_values(argv: Sequence[str], keys, defaults: Optional[dict] = None) -> dict[str, str]:
    """The `key=value` arguments of the small entry points (score, tables, pareto) over `defaults`;
    anything else, or a key not in `keys`, is a ValueError naming the argument and the known keys."""
    args = dict(defaults or {})
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in keys:
            raise ValueError(f"unknown argument {item!r}: expected key=value with key in {sorted(keys)}")
        args[key] = value
    return args


@contextlib.contextmanager
def user_errors(stream=None):
    """Turn validation errors raised inside the block into one line on stderr and exit code 2."""
    try:
        yield
    except _user_error_types() as err:
        if full_errors():
            raise
        print(f"error: {one_line(err)}", file=stream or sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None


def override_not_applying(cfg_without: object, overrides: Sequence[str]) -> Optional[str]:
    """For an override `a.b.c=v` whose parent `a.b` is null in the composed config (a switched-off
    half, e.g. compression=none has cacher: null), say so, instead of OmegaConf's internal assertion."""
    from omegaconf import OmegaConf

    for override in overrides:
        key, sep, _ = override.partition("=")
        if not sep or key.startswith(("+", "~", "hydra")) or "." not in key:
            continue
        parts = key.split(".")
        group = parts[0]
        choice = next((o.partition("=")[2] for o in overrides if o.startswith(f"{group}=")), None)
        where = f" with {group}={choice}" if choice else ""
        for depth in range(1, len(parts)):
            parent = ".".join(parts[:depth])
            value = OmegaConf.select(cfg_without, parent, default="<absent>")
            if value is None:
                return f"setting {key!r} does not apply{where}: {parent} is off (null) there; drop the override or pick a {group} that has it"
            if value == "<absent>" and depth >= 2 and group == "compression":
                return (f"setting {key!r} does not apply{where}: method {parts[1]!r} is not selected there; pick a "
                        f"compression that has it (e.g. compression=[{choice or 'none'},<file with {parts[1]}>]) or drop the override")
    return None
