"""Which runs fill a table, where their outputs land, and the exact command that produces each one.

A table cell is read from `<results>/<benchmark>-<framework>-<label>/metrics.json` (the evaluation
runner's own naming) or from `<speed>/<preset>[-<hash of the overrides>]/results.json` (speed harness). The same
function builds the directory the table reads and the command that writes it, so they cannot drift.
Rows with overrides get their row id as label (`++compression.name=<id>`), so ablation runs never
collide with the plain `stc` / `none` runs.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from evaluation.tables.spec import Row, TableSpec

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@dataclass(frozen=True)
class EvalRun:
    """One (row, benchmark) evaluation: its Hydra overrides, output folder and command."""

    row: Row
    benchmark: str
    run_name: str
    run_dir: Path
    overrides: tuple[str, ...]
    command: str
    unavailable: str = ""  # why this checkout cannot run it ("" = it can)


@dataclass(frozen=True)
class SpeedRun:
    """One speed-harness run (shared by every row with the same preset and overrides)."""

    run_dir: Path
    command: str


def row_label(row: Row) -> str:
    """Run label: explicit `label`, else the compression preset when the row changes nothing, else the row id."""
    if row.label:
        return row.label
    if len(row.compression) == 1 and not row.overrides:
        return row.compression[0]
    return row.id


def _shell(arg: str) -> str:
    """Quote for bash but keep $VARIABLES expandable (model paths, data root, GPU count)."""
    if "$" in arg and '"' not in arg and "`" not in arg:
        return f'"{arg}"'
    return shlex.quote(arg)


def _force(override: str) -> str:
    """`compression.<m>.<field>=v` -> `++compression.<m>.<field>=v`: the compression group files list only
    the settings they change (`configs/compression/stc_cacher.yaml` has no `reuse`), so a plain override of
    any other field fails to compose; `++` adds or overrides. Other overrides pass unchanged."""
    return "++" + override if override.startswith("compression.") else override


def unavailable_reason(row: Row) -> str:
    """'' when this checkout has the row's host and compression configs, else what is missing."""
    import yaml

    from frameworks.registry import HOSTS
    from stc.compression import METHODS

    if row.framework not in HOSTS or not (CONFIGS / "framework" / f"{row.framework}.yaml").is_file():
        return f"framework {row.framework!r} is not registered in this checkout (frameworks/registry.py HOSTS)"
    for name in row.compression:
        path = CONFIGS / "compression" / f"{name}.yaml"
        if not path.is_file():
            return f"compression {name!r} has no configs/compression/{name}.yaml in this checkout"
        for method in yaml.safe_load(path.read_text()) or {}:
            if method not in ("name", "defaults") and method not in METHODS:
                return f"compression method {method!r} (configs/compression/{name}.yaml) is not registered (stc/compression/registry.py)"
    return ""


def eval_run(spec: TableSpec, row: Row, benchmark: str, results: str | Path,
             data: str = "$DATA", ngpu: str = "$NGPU") -> EvalRun:
    """The evaluation run of `row` on `benchmark`, writing `<results>/<benchmark>-<framework>-<label>`."""
    label = row_label(row)
    run_name = f"{benchmark}-{row.framework}-{label}"
    run_dir = Path(results) / run_name
    extra = (*spec.framework_args.get(row.framework, ()), *spec.benchmarks.get(benchmark, ()),
             *(_force(o) for o in row.overrides), f"++compression.name={label}")
    overrides = (f"benchmark={benchmark}", f"framework={row.framework}", f"compression={row.compression_arg}",
                 f"data.root={data}/{benchmark}", *extra, f"run_name={run_name}", f"output_dir={run_dir}")
    command = " ".join([f"RESULTS={_shell(str(results))}", f"RUN_NAME={run_name}", "bash scripts/eval_benchmark.sh",
                        benchmark, row.framework, _shell(row.compression_arg), _shell(f"{data}/{benchmark}"), _shell(ngpu),
                        *(_shell(a) for a in extra)])
    return EvalRun(row=row, benchmark=benchmark, run_name=run_name, run_dir=run_dir, overrides=overrides,
                   command=command, unavailable=unavailable_reason(row))


def speed_run(row: Row, speed_root: str | Path) -> Optional[SpeedRun]:
    """The speed-harness run of `row` (None when the row has no latency columns)."""
    if row.speed is None:
        return None
    digest = hashlib.sha1("\n".join(row.speed.overrides).encode()).hexdigest()[:8]
    run_dir = Path(speed_root) / (row.speed.preset + (f"-{digest}" if row.speed.overrides else ""))
    args = [f"preset={row.speed.preset}", *row.speed.overrides, f"out_dir={run_dir}"]
    return SpeedRun(run_dir=run_dir, command="python -m speed_benchmark " + " ".join(_shell(a) for a in args))


def eval_runs(spec: TableSpec, results: str | Path, data: str = "$DATA", ngpu: str = "$NGPU") -> list[EvalRun]:
    return [eval_run(spec, row, bench, results, data, ngpu) for row in spec.rows for bench in spec.eval_benchmarks]


def speed_runs(spec: TableSpec, speed_root: str | Path) -> list[SpeedRun]:
    runs: dict[Path, SpeedRun] = {}
    for row in spec.rows:
        run = speed_run(row, speed_root)
        if run is not None:
            runs.setdefault(run.run_dir, run)
    return list(runs.values())


def shell_plan(spec: TableSpec, results: str | Path, speed_root: str | Path, data: str = "$DATA",
               ngpu: str = "$NGPU", speed: bool = True) -> str:
    """Bash lines that produce every missing run of the table (finished runs are skipped; an unfinished
    one resumes from its predictions.jsonl). Rows this checkout cannot run are reported, not attempted."""
    lines = [f"# runs of table {spec.name} ({spec.path or 'spec'})"]
    for run in eval_runs(spec, results, data, ngpu):
        where = f"{run.row.id} / {run.benchmark}"
        if (run.run_dir / "metrics.json").is_file():
            lines.append(f"echo {shlex.quote(f'done: {where} ({run.run_dir})')}")
        elif run.unavailable:
            lines.append(f"echo {shlex.quote(f'SKIP {where}: {run.unavailable}')} >&2")
        else:
            lines += [f"echo {shlex.quote(f'== {where} -> {run.run_dir}')}", run.command]
    if speed:
        for run in speed_runs(spec, speed_root):
            if _speed_complete(run.run_dir):
                lines.append(f"echo {shlex.quote(f'done: speed {run.run_dir}')}")
            else:
                lines += [f"echo {shlex.quote(f'== speed -> {run.run_dir}')}", run.command]
    return "\n".join(lines) + "\n"


def _speed_complete(run_dir: Path) -> bool:
    import json

    path = run_dir / "results.json"
    if not path.is_file():
        return False
    try:
        return bool(json.loads(path.read_text()).get("complete"))
    except (ValueError, AttributeError):
        return False
