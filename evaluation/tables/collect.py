"""Fill a table: read each run's `metrics.json` / speed `results.json`, pick the column's number, put the
paper's published number and the difference beside it, and record which run (and settings) it came from.

A cell never raises: a missing run is "–" with the command that would produce it; an unreadable file or
an absent metric is "–" with the reason; a run whose recorded settings disagree with the row's overrides
keeps its number but is flagged (a stale run must not pass silently as the ablation's value).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from evaluation.tables.plan import EvalRun, eval_run, speed_run
from evaluation.tables.spec import Column, Row, TableSpec


@dataclass
class Cell:
    value: Optional[float] = None
    paper: Optional[float] = None
    paper_known: bool = False
    source: str = ""             # run dir / results.json (and harness row) the value came from
    missing: str = ""            # why there is no value
    run_missing: bool = False    # the run itself is absent (its command is listed), not just this number
    command: str = ""            # what would produce it
    flags: list[str] = field(default_factory=list)   # settings that disagree with the row

    @property
    def diff(self) -> Optional[float]:
        return None if self.value is None or self.paper is None else self.value - self.paper


@dataclass
class RunRecord:
    """One evaluation run of the table, for the settings section."""

    row: Row
    benchmark: str
    run_dir: Path
    status: str                  # ok | missing | unreadable | unavailable
    command: str
    settings: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    reason: str = ""


@dataclass
class FilledTable:
    spec: TableSpec
    cells: dict[tuple[str, str], Cell]       # (row id, column id) -> cell
    runs: list[RunRecord]
    speed: list[dict]                        # {row, dir, status, command}


def read_json(path: Path) -> tuple[Optional[dict], str]:
    """(content, '') or (None, reason): a missing or broken file is a reason, never an exception."""
    if not path.is_file():
        return None, f"no {path}"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return None, f"{path}: unreadable ({error})"
    if not isinstance(data, dict):
        return None, f"{path}: expected a JSON object"
    return data, ""


def metric_value(metrics: dict, column: Column) -> tuple[Optional[float], str]:
    """The column's number in a run's metrics.json: the first headline key present, or the `value` of
    the row of table `table` whose fields equal `where`."""
    if column.headline:
        headline = metrics.get("headline") or {}
        for key in column.headline:
            if key in headline and isinstance(headline[key], (int, float)):
                return float(headline[key]), ""
        return None, f"none of the headline keys {list(column.headline)} in metrics.json (has {list(headline)})"
    rows = (metrics.get("tables") or {}).get(column.table)
    if not isinstance(rows, list):
        return None, f"no table {column.table!r} in metrics.json"
    for row in rows:
        if all(str(row.get(k)) == str(v) for k, v in column.where.items()):
            value = row.get(column.value)
            if isinstance(value, (int, float)):
                return float(value), ""
            return None, f"table {column.table!r} row {dict(column.where)} has no numeric {column.value!r}"
    return None, f"table {column.table!r} has no row {dict(column.where)}"


def settings_flags(row: Row, benchmark: str, settings: dict) -> list[str]:
    """Row overrides `compression.<method>.<field>=<value>` (and host/benchmark) the run did not use."""
    import yaml

    flags = []
    if settings.get("framework") not in (None, row.framework):
        flags.append(f"framework={settings.get('framework')} (row: {row.framework})")
    if settings.get("benchmark") not in (None, benchmark):
        flags.append(f"benchmark={settings.get('benchmark')} (column: {benchmark})")
    recorded = settings.get("compression_settings") or {}
    for override in row.overrides:
        key, _, raw = override.lstrip("+").partition("=")
        parts = key.split(".")
        if len(parts) != 3 or parts[0] != "compression":
            continue
        expected = yaml.safe_load(raw)
        name = f"{parts[1]}.{parts[2]}"
        if recorded.get(name) != expected:
            flags.append(f"{name}={recorded.get(name, 'absent')} (row: {expected})")
    return flags


def speed_value(results: dict, names: tuple[str, ...], quantity: str) -> tuple[Optional[float], str, str]:
    """(value, harness row used, reason) for a speed column: total_ms (ms over the run's frames, the
    paper's "16 frames" unit), per_frame_ms, or reduction_pct (vs the harness row's own baseline)."""
    by_name = {r.get("name"): r for r in results.get("rows") or [] if isinstance(r, dict)}
    name = next((n for n in names if n in by_name), None)
    if name is None:
        return None, "", f"none of the harness rows {list(names)} in results.json"
    row = by_name[name]
    median = (row.get("stats") or {}).get("median")
    if not isinstance(median, (int, float)):
        return None, name, f"harness row {name!r} has no median"
    frames = (row.get("params") or {}).get("frames")
    per_frame = row.get("unit") == "ms/frame"
    if quantity == "reduction_pct":
        fraction = row.get("measured_fraction")
        if fraction is None and row.get("method") == "baseline":
            fraction = 1.0
        if not isinstance(fraction, (int, float)):
            return None, name, f"harness row {name!r} has no measured_fraction"
        return 100.0 * (fraction - 1.0), name, ""
    if row.get("unit") not in ("ms", "ms/frame"):
        return None, name, f"harness row {name!r} is in {row.get('unit')!r}, not ms"
    if quantity == "total_ms":
        if per_frame and not frames:
            return None, name, f"harness row {name!r} does not state its frames"
        return float(median) * (frames if per_frame else 1), name, ""
    if not per_frame and not frames:
        return None, name, f"harness row {name!r} does not state its frames"
    return float(median) / (1 if per_frame else frames), name, ""


def fill(spec: TableSpec, results: str | Path, speed_root: str | Path, data: str = "$DATA", ngpu: str = "$NGPU") -> FilledTable:
    cells: dict[tuple[str, str], Cell] = {}
    runs: list[RunRecord] = []
    speed: list[dict] = []
    for row in spec.rows:
        loaded: dict[str, tuple[Optional[dict], EvalRun, RunRecord]] = {}
        for bench in spec.eval_benchmarks:
            run = eval_run(spec, row, bench, results, data, ngpu)
            metrics, reason = read_json(run.run_dir / "metrics.json")
            if metrics is not None:
                settings = metrics.get("settings") or {}
                record = RunRecord(row, bench, run.run_dir, "ok", run.command, settings, metrics.get("counts") or {},
                                   settings_flags(row, bench, settings))
            else:
                status = "unavailable" if run.unavailable and reason.startswith("no ") else "missing" if reason.startswith("no ") else "unreadable"
                record = RunRecord(row, bench, run.run_dir, status, run.command,
                                   reason=run.unavailable if status == "unavailable" else reason)
            runs.append(record)
            loaded[bench] = (metrics, run, record)
        srun = speed_run(row, speed_root)
        results_json, speed_reason = (None, "")
        if srun is not None:
            results_json, speed_reason = read_json(srun.run_dir / "results.json")
            speed.append({"row": row, "dir": srun.run_dir, "command": srun.command,
                          "status": "ok" if results_json is not None else "missing", "reason": speed_reason,
                          "complete": bool(results_json and results_json.get("complete")),
                          "note": row.speed.note if row.speed else ""})
        for column in spec.columns:
            cell = Cell(paper=row.paper.get(column.id), paper_known=row.paper.get(column.id) is not None)
            if column.kind == "eval":
                metrics, run, record = loaded[column.benchmark]
                cell.source, cell.command = str(run.run_dir), run.command
                if metrics is None:
                    cell.missing, cell.run_missing = record.reason, True
                else:
                    cell.value, cell.missing = metric_value(metrics, column)
                    cell.flags = list(record.flags)
            elif column.kind == "speed":
                names = row.speed.rows.get(column.speed, ()) if row.speed else ()
                if srun is None or not names:
                    cell.missing = f"row has no speed rows for {column.speed!r}"
                else:
                    cell.command = srun.command
                    if results_json is None:
                        cell.missing, cell.run_missing = speed_reason, True
                    else:
                        cell.value, used, cell.missing = speed_value(results_json, names, column.quantity)
                        cell.source = f"{srun.run_dir}/results.json [{used or ' | '.join(names)}]"
                        if cell.missing and row.speed.note:
                            cell.missing += f" ({row.speed.note})"
            cells[(row.id, column.id)] = cell
        for column in spec.columns:  # means after their inputs
            if column.kind == "mean":
                parts = [cells[(row.id, ref)] for ref in column.mean_of]
                cell = cells[(row.id, column.id)]
                if all(p.value is not None for p in parts):
                    cell.value = sum(p.value for p in parts) / len(parts)
                    cell.flags = sorted({f for p in parts for f in p.flags})
                else:
                    cell.missing, cell.run_missing = "mean of " + ", ".join(column.mean_of) + ": some are missing", True
    return FilledTable(spec=spec, cells=cells, runs=runs, speed=speed)
