"""Released checkpoints onto our modules: find the weight files, rename the tensors, check, then copy.

Hosts whose released checkpoint is not a stock transformers class (StreamForest's LLaVA-Qwen, Dispider's
LongQwen2 + stream compressor) rebuild the model from our HF-class modules and fill it from the released
files. The mechanism is the same for every such host and lives here; a host declares only its `NameMap`
(released prefix -> our prefix, first match wins) and which folders hold weights.

Everything is checked from the file headers before any tensor is copied: a checkpoint that does not fit
raises ONE `ReleasedWeightsError` (a ValueError) whose single line names the checkpoint, the files and
the offending keys (missing, unexpected, mis-shaped), never a silently random layer. Reads safetensors
(via `safe_open`, one tensor at a time) and torch `.bin` files (`torch.load(weights_only=True, mmap=True)`),
sharded or not. Nothing is ever downloaded.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

# format -> (index file of a sharded checkpoint, glob of its weight files)
FORMATS = {"safetensors": ("model.safetensors.index.json", "*.safetensors"),
           "bin": ("pytorch_model.bin.index.json", "pytorch_model*.bin")}
SHOWN = 8  # keys listed per kind of problem in an error line


@dataclass(frozen=True)
class NameMap:
    """How released tensor names become ours.

    `folds`: (released prefix, replacement) applied first, every one in order (alternative spellings of
    the same released tensor, e.g. a re-export's extra nesting level). `rules`: (released prefix, our
    prefix or None), first match wins; None = a released tensor the host never reads. `ignore`: regexes
    for released tensors that are skipped when they have no place in our model (consulted only then, so a
    tensor our model does have is always loaded)."""

    rules: tuple[tuple[str, str | None], ...]
    folds: tuple[tuple[str, str], ...] = ()
    ignore: tuple[str, ...] = ()

    def ours(self, released: str) -> str | None:
        """Our name for a released one; None = deliberately unused; KeyError when no rule matches."""
        for prefix, replacement in self.folds:
            if released.startswith(prefix):
                released = replacement + released[len(prefix):]
        for prefix, target in self.rules:
            if released.startswith(prefix):
                return None if target is None else target + released[len(prefix):]
        raise KeyError(released)

    def released(self, ours: str) -> str:
        """Inverse of `ours` (the first rule's spelling), used to write checkpoints in the released layout."""
        for prefix, target in self.rules:
            if target is not None and ours.startswith(target):
                return prefix + ours[len(target):]
        raise KeyError(f"{ours!r} has no name in the released layout")

    def ignored(self, released: str) -> bool:
        return any(re.search(pattern, released) for pattern in self.ignore)


@dataclass(frozen=True)
class WeightFile:
    """One weight file and the prefix its keys are read under (a sub-folder holding one sub-module)."""

    path: Path
    prefix: str = ""


def weight_files(folder: str | Path, prefix: str = "", fmt: str = "safetensors",
                 index: bool = True) -> list[WeightFile]:
    """The weight files of `folder`: the shards its index file names when there is one (and `index`),
    else every file matching the format's glob, sorted. Empty when there are none (the host says why)."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r}: choose one of {sorted(FORMATS)}")
    folder = Path(folder)
    index_name, pattern = FORMATS[fmt]
    index_file = folder / index_name
    if index and index_file.is_file():
        try:
            shards = sorted(set(json.loads(index_file.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{index_file}: not a shard index (needs a 'weight_map' of name -> file): "
                             f"{error!r}") from None
        absent = [shard for shard in shards if not (folder / shard).is_file()]
        if absent:
            raise FileNotFoundError(f"{index_file}: names shards that are not in the folder: {', '.join(absent)}")
        return [WeightFile(folder / shard, prefix) for shard in shards]
    return [WeightFile(path, prefix) for path in sorted(folder.glob(pattern))]


@dataclass
class Mismatch:
    """What does not fit, by file label (path relative to the checkpoint root) and key as stored there."""

    files: list[str]
    missing: list[str] = field(default_factory=list)                                # our names no tensor fills
    unexpected: list[tuple[str, str]] = field(default_factory=list)                 # (file, key)
    wrong_shape: list[tuple[str, str, tuple, tuple]] = field(default_factory=list)  # (file, key, theirs, ours)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.wrong_shape)

    def describe(self) -> str:
        """One line: missing keys (and where they were looked for), unexpected keys per file, shapes."""
        parts = []
        if self.missing:
            parts.append(f"missing keys [{_show(self.missing)}] (in none of {_show(self.files)})")
        by_file: dict[str, list[str]] = {}
        for file, key in self.unexpected:
            by_file.setdefault(file, []).append(key)
        parts += [f"unexpected keys [{_show(sorted(keys))}] in {file}" for file, keys in by_file.items()]
        if self.wrong_shape:
            parts.append("shapes do not match the config: " + _show(
                [f"{file}:{key} checkpoint {theirs} vs model {ours}" for file, key, theirs, ours in self.wrong_shape]))
        return "; ".join(parts)


class ReleasedWeightsError(ValueError):
    """A checkpoint that does not fit the model; `.mismatch` holds the details."""

    def __init__(self, message: str, mismatch: Mismatch):
        super().__init__(message)
        self.mismatch = mismatch


def load_released_weights(model: torch.nn.Module, files: Sequence[WeightFile], names: NameMap, root: str | Path,
                          layout: str = "this model", optional: Sequence[str] = (), device: str | torch.device = "cpu",
                          message: Callable[[Mismatch], str] | None = None) -> None:
    """Fill `model` from `files` through `names`, in place, one tensor at a time (never a second copy).

    Every parameter and persistent buffer (a tied tensor once) must receive a tensor except `optional`
    ones; every file key must map onto a model tensor, be mapped to None, or match an ignore pattern;
    shapes must agree. Otherwise nothing is copied and `ReleasedWeightsError` is raised with
    `message(mismatch)`, by default "checkpoint '<root>' does not fit <layout>: <Mismatch.describe()>".
    Tensors are read onto `device` and converted to the model's dtype by the copy."""
    root = Path(root)
    targets = model.state_dict()
    required = {name for name, _ in model.named_parameters()}
    required |= {name for name, _ in model.named_buffers() if name in targets}
    plan: list[list[tuple[str, str]]] = [[] for _ in files]  # per file (key, our name); a later duplicate wins
    mismatch = Mismatch(files=[_label(file.path, root) for file in files])
    for file, copies in zip(files, plan):
        with _open(file.path, "cpu") as reader:
            for key in reader.keys():
                ours = _target(names, file.prefix + key, targets)
                if ours is None:
                    continue
                if ours == "":
                    mismatch.unexpected.append((_label(file.path, root), key))
                    continue
                theirs, wanted = reader.shape(key), tuple(targets[ours].shape)
                if theirs != wanted:
                    mismatch.wrong_shape.append((_label(file.path, root), key, theirs, wanted))
                copies.append((key, ours))
    mismatch.missing = sorted(required - {ours for copies in plan for _, ours in copies} - set(optional))
    if mismatch:
        default = f"checkpoint {str(root)!r} does not fit {layout}: {mismatch.describe()}"
        raise ReleasedWeightsError(message(mismatch) if message else default, mismatch)
    for file, copies in zip(files, plan):
        with _open(file.path, str(device)) as reader, torch.no_grad():
            for key, ours in copies:
                targets[ours].copy_(reader.tensor(key))


def _target(names: NameMap, released: str, targets: dict) -> str | None:
    """Our name if the tensor is loaded, None if it is skipped, "" if it is unexpected."""
    try:
        ours = names.ours(released)
    except KeyError:
        return None if names.ignored(released) else ""
    if ours is None or ours in targets:
        return ours
    return None if names.ignored(released) else ""


def _label(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _show(items: Sequence[str]) -> str:
    return ", ".join(items[:SHOWN]) + (f", ... ({len(items)} in all)" if len(items) > SHOWN else "")


class _Reader:
    """keys / shape / tensor of one open weight file, whatever its format."""

    def __init__(self, keys: Callable, shape: Callable, tensor: Callable):
        self.keys, self.shape, self.tensor = keys, shape, tensor


@contextmanager
def _open(path: Path, device: str) -> Iterator[_Reader]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            handle_context = safe_open(str(path), framework="pt", device=device)
        except Exception as error:  # safetensors raises its own error type for a bad header
            raise ValueError(f"{path}: not a readable safetensors file ({error})") from None
        with handle_context as handle:
            yield _Reader(handle.keys, lambda key: tuple(handle.get_slice(key).get_shape()), handle.get_tensor)
        return
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # pickle / zip errors of every kind
        raise ValueError(f"{path}: not a readable torch weight file ({error})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: holds a {type(state).__name__}, not a name -> tensor mapping")
    yield _Reader(state.keys, lambda key: tuple(state[key].shape), lambda key: state[key].to(device))
