"""Name -> benchmark registry; keys are the `benchmark.name` values used in configs.

A benchmark is a small declarative unit (`Benchmark`) of pure functions living in
`evaluation/benchmarks/<name>/`. Modules are imported lazily by `get_benchmark`, so importing the
registry does no work.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from evaluation.config import BenchmarkConfig
from evaluation.types import Loaded, Sample
from frameworks.protocol import Query

Prediction = dict  # one line of predictions.jsonl (see evaluation/predictions.py)


@dataclass(frozen=True)
class Benchmark:
    """What the runner and the scorers need from one benchmark.

    Attributes:
        load: (annotation path, config, data root) -> Loaded(samples, rejected): a bad record is a
            `Rejected` entry (guard each record with `Rejects.guard`); AnnotationError only for a file
            that is unreadable or has the wrong top-level shape.
        build_query: (sample, config) -> Query with the configured prompt template.
        score_item: (prediction, config) -> {"parsed": str, "answered": bool, "correct": bool}.
        aggregate: (scored predictions, config) -> metrics {"headline", "tables", "notes"}.
        scorings / prompts: the accepted `benchmark.scoring` / `benchmark.prompt` values.
        read_upstream: optional (file, config, model_key) -> Loaded(predictions, rejected), for upstream
            result files.
        write_artifacts: optional (scored predictions, config, out dir) -> list of files written.
    """

    name: str
    load: Callable[[Path, BenchmarkConfig, Path], Loaded]
    build_query: Callable[[Sample, BenchmarkConfig], Query]
    score_item: Callable[[Prediction, BenchmarkConfig], dict]
    aggregate: Callable[[Sequence[Prediction], BenchmarkConfig], dict]
    scorings: tuple[str, ...]
    prompts: tuple[str, ...]
    read_upstream: Optional[Callable[[Path, BenchmarkConfig, Optional[str]], Loaded]] = None
    write_artifacts: Optional[Callable[[Sequence[Prediction], BenchmarkConfig, Path], list[str]]] = None

    @classmethod
    def from_task(cls, name: str, task, **overrides) -> "Benchmark":
        """Build from a `task.py` module following the folder convention: `load`, `build_query`,
        `score_item`, `aggregate`, `SCORINGS`, `PROMPTS` (or a `TEMPLATES` dict), optional `read_upstream`."""
        prompts = getattr(task, "PROMPTS", None) or tuple(task.TEMPLATES)
        fields = dict(name=name, load=task.load, build_query=task.build_query, score_item=task.score_item,
                      aggregate=task.aggregate, scorings=task.SCORINGS, prompts=tuple(prompts),
                      read_upstream=getattr(task, "read_upstream", None))
        return cls(**{**fields, **overrides})

    def check(self, cfg: BenchmarkConfig) -> None:
        """One clear error when the config names a variant this benchmark does not have."""
        if cfg.scoring not in self.scorings:
            raise ValueError(f"benchmark {self.name}: invalid scoring={cfg.scoring!r}; choose one of {self.scorings}")
        if cfg.prompt not in self.prompts:
            raise ValueError(f"benchmark {self.name}: invalid prompt={cfg.prompt!r}; choose one of {self.prompts}")


_BENCHMARKS: dict[str, Benchmark] = {}
_MODULES = {name: f"evaluation.benchmarks.{name}" for name in ("ovobench", "streamingbench", "mlvu", "egoschema", "videomme")}


def register_benchmark(benchmark: Benchmark) -> Benchmark:
    existing = _BENCHMARKS.get(benchmark.name)
    if existing is not None and existing is not benchmark:
        raise KeyError(f"benchmark {benchmark.name!r} already registered")
    _BENCHMARKS[benchmark.name] = benchmark
    return benchmark


def list_benchmarks() -> list[str]:
    return sorted(set(_BENCHMARKS) | set(_MODULES))


def get_benchmark(name: str) -> Benchmark:
    if name not in _BENCHMARKS and name in _MODULES:
        importlib.import_module(_MODULES[name])
    if name not in _BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; available: {list_benchmarks()}")
    return _BENCHMARKS[name]


def mc_query(sample: Sample, cfg: BenchmarkConfig, prompt: str, answer_prefix: str = "", **extra: Any) -> Query:
    """Query shared by all benchmarks: retrieval uses the bare question when a chat template is used
    (ReKV offline protocol), else the raw prompt doubles as retrieval text (STC's online wrappers)."""
    return Query(
        prompt=prompt,
        retrieval_text=sample.question if cfg.chat_template else prompt,
        answer_prefix=answer_prefix,
        use_chat_template=cfg.chat_template,
        options=tuple(sample.options),
        max_new_tokens=cfg.max_new_tokens,
        **extra,
    )
