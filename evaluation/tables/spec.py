"""A paper table as data: rows (framework, compression, overrides), columns (benchmark metrics, speed
quantities, means of other columns) and the paper's published numbers, read from `configs/tables/<name>.yaml`.

One YAML per paper table keeps the layout, the runs that fill it and the numbers to compare with in one
place that a reader can check against the paper; the code that runs, collects and renders knows no table.
Validation happens once, here, with one error naming the file and the field.

YAML shape (every key documented in docs/REPRODUCE.md, "Table specs"):

    name: cacher_reuse
    title: ...
    source: stc-method.md §2.5          # where the published numbers come from
    framework: rekv                     # default host of the rows
    framework_args: {rekv: [framework.model_path=$REKV_MODEL]}   # per-host overrides (model paths)
    benchmarks: {ovobench: ["benchmark.tasks=[EPM,STU,REC]"], egoschema: []}   # per-benchmark overrides
    columns:
      - {id: epm, title: EPM, benchmark: ovobench, table: per task, where: {task: EPM}}
      - {id: ego, title: EgoSchema, benchmark: egoschema, headline: [Subset accuracy]}
      - {id: avg, title: Avg, mean_of: [epm, ego]}
      - {id: vit, title: ViT ms, speed: vit, quantity: total_ms}
    rows:
      - id: both
        title: Attention + MLP
        compression: stc_cacher          # a configs/compression name or a list of them
        overrides: [compression.cacher.reuse=both]
        paper: {epm: 54.2, ego: 59.0}    # null or absent = "n/a (not in spec)"
        speed: {preset: llava_ov_7b, overrides: [frames=16], rows: {vit: [stc graph N=2, stc eager N=2]}}
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional

TABLES_DIR = Path(__file__).resolve().parents[2] / "configs" / "tables"
SPEED_QUANTITIES = ("total_ms", "per_frame_ms", "reduction_pct")


@dataclass(frozen=True)
class Column:
    """One metric column. Exactly one source: a benchmark metric (`benchmark` + `headline` candidates,
    or `table` + `where` + `value`), a speed quantity (`speed` = key of the row's speed rows), or
    `mean_of` other column ids (computed only when every one of them is present)."""

    id: str
    title: str
    benchmark: Optional[str] = None
    headline: tuple[str, ...] = ()
    table: Optional[str] = None
    where: Mapping[str, Any] = field(default_factory=dict)
    value: str = "accuracy"
    mean_of: tuple[str, ...] = ()
    speed: Optional[str] = None
    quantity: str = "total_ms"
    digits: int = 1

    @property
    def kind(self) -> str:
        return "mean" if self.mean_of else "speed" if self.speed else "eval"


@dataclass(frozen=True)
class SpeedRow:
    """How a row's latency is measured: one speed-harness run (preset + overrides) and, per speed
    column key, the harness row names to read (first one present wins: e.g. graph, then eager)."""

    preset: str
    overrides: tuple[str, ...] = ()
    rows: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Row:
    """One table row = one host + compression setting, evaluated on every benchmark of the table."""

    id: str
    title: str
    framework: str
    compression: tuple[str, ...]
    overrides: tuple[str, ...] = ()
    label: str = ""
    paper: Mapping[str, Optional[float]] = field(default_factory=dict)
    speed: Optional[SpeedRow] = None
    note: str = ""
    budget: Optional[float] = None   # the paper's share of visual tokens kept (Pareto plots' x for paper points)

    @property
    def compression_arg(self) -> str:
        """The value of `compression=` on the command line: `stc` or `[stc_cacher,stc_pruner]`."""
        return self.compression[0] if len(self.compression) == 1 else "[" + ",".join(self.compression) + "]"


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    source: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    benchmarks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    framework_args: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    path: str = ""

    def column(self, column_id: str) -> Column:
        return next(c for c in self.columns if c.id == column_id)

    @property
    def eval_benchmarks(self) -> list[str]:
        """Benchmarks with at least one column, in column order."""
        seen: list[str] = []
        for column in self.columns:
            if column.benchmark and column.benchmark not in seen:
                seen.append(column.benchmark)
        return seen

    def with_parity(self) -> "TableSpec":
        """The same table with the released behaviour wherever this port deliberately differs (the
        reproduction default; docs/evaluation.md "Parity switches"): ReKV's released attention-sink
        positions, and the released pruner history on rows that run STC-Pruner's default strategy
        (ReKV rows: the released STC code is the ReKV integration)."""
        def parity(row: Row) -> Row:
            extra = []
            if row.framework != "rekv":
                return row
            if not any(o.startswith("framework.sink_positions") for o in row.overrides):
                extra.append("framework.sink_positions=released")
            has_pruner = any(name in ("stc", "stc_pruner") for name in row.compression)  # the STC-Pruner groups
            if has_pruner and not any("pruner.strategy" in o for o in row.overrides):
                extra.append("compression.pruner.strategy=gaussian_released")
            return replace(row, overrides=row.overrides + tuple(extra)) if extra else row

        return replace(self, rows=tuple(parity(r) for r in self.rows))

    def with_framework(self, framework: str) -> "TableSpec":
        """The same table with every row on `framework` (dry runs on the toy host)."""
        return replace(self, rows=tuple(replace(r, framework=framework) for r in self.rows))


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        return tuple(str(v) for v in value)
    raise ValueError(f"{where}: expected a string or a list of strings, got {value!r}")


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {value!r}")
    return dict(value)


def _check_keys(raw: Mapping, allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown key; known: {', '.join(sorted(allowed))}")


def _column(raw: Mapping, where: str) -> Column:
    _check_keys(raw, {f for f in Column.__dataclass_fields__}, where)
    if not raw.get("id"):
        raise ValueError(f"{where}.id: every column needs an id")
    column = Column(id=str(raw["id"]), title=str(raw.get("title", raw["id"])), benchmark=raw.get("benchmark"),
                    headline=_strings(raw.get("headline"), f"{where}.headline"), table=raw.get("table"),
                    where=_mapping(raw.get("where"), f"{where}.where"), value=str(raw.get("value", "accuracy")),
                    mean_of=_strings(raw.get("mean_of"), f"{where}.mean_of"), speed=raw.get("speed"),
                    quantity=str(raw.get("quantity", "total_ms")), digits=int(raw.get("digits", 1)))
    sources = [bool(column.benchmark), bool(column.mean_of), bool(column.speed)]
    if sum(sources) != 1:
        raise ValueError(f"{where}: needs exactly one of benchmark, mean_of, speed")
    if column.benchmark and bool(column.headline) == bool(column.table):
        raise ValueError(f"{where}: a benchmark column needs either headline (candidate keys) or table + where")
    if column.speed and column.quantity not in SPEED_QUANTITIES:
        raise ValueError(f"{where}.quantity: {column.quantity!r} is not one of {SPEED_QUANTITIES}")
    return column


def _speed(raw: Any, where: str) -> Optional[SpeedRow]:
    if raw is None:
        return None
    raw = _mapping(raw, where)
    _check_keys(raw, {"preset", "overrides", "rows", "note"}, where)
    if not raw.get("preset"):
        raise ValueError(f"{where}.preset: a speed row needs the speed-harness preset")
    rows = {str(k): _strings(v, f"{where}.rows.{k}") for k, v in _mapping(raw.get("rows"), f"{where}.rows").items()}
    return SpeedRow(preset=str(raw["preset"]), overrides=_strings(raw.get("overrides"), f"{where}.overrides"),
                    rows=rows, note=str(raw.get("note", "")))


def _row(raw: Mapping, where: str, default_framework: Optional[str], column_ids: set[str]) -> Row:
    _check_keys(raw, {"id", "title", "framework", "compression", "overrides", "label", "paper", "speed", "note", "budget"}, where)
    if not raw.get("id"):
        raise ValueError(f"{where}.id: every row needs an id")
    framework = raw.get("framework", default_framework)
    if not framework:
        raise ValueError(f"{where}.framework: no framework for this row and no table-level default")
    paper = _mapping(raw.get("paper"), f"{where}.paper")
    for key, value in paper.items():
        if key not in column_ids:
            raise ValueError(f"{where}.paper.{key}: no column with this id; columns: {', '.join(sorted(column_ids))}")
        if value is not None and not isinstance(value, (int, float)):
            raise ValueError(f"{where}.paper.{key}: expected a number or null (not in spec), got {value!r}")
    compression = _strings(raw.get("compression", "none"), f"{where}.compression")
    if not compression:
        raise ValueError(f"{where}.compression: empty; use none for no compression")
    return Row(id=str(raw["id"]), title=str(raw.get("title", raw["id"])), framework=str(framework),
               compression=compression, overrides=_strings(raw.get("overrides"), f"{where}.overrides"),
               label=str(raw.get("label", "") or ""), paper={k: (None if v is None else float(v)) for k, v in paper.items()},
               speed=_speed(raw.get("speed"), f"{where}.speed"), note=str(raw.get("note", "")),
               budget=None if raw.get("budget") is None else float(raw["budget"]))


def spec_from_mapping(raw: Mapping, where: str = "table") -> TableSpec:
    """Validate a table mapping (as loaded from YAML) into a `TableSpec`; errors name `where.<field>`."""
    raw = _mapping(raw, where)
    _check_keys(raw, {"name", "title", "source", "framework", "framework_args", "benchmarks", "columns", "rows", "notes"}, where)
    for key in ("name", "columns", "rows"):
        if not raw.get(key):
            raise ValueError(f"{where}.{key}: required")
    columns = tuple(_column(_mapping(c, f"{where}.columns[{i}]"), f"{where}.columns[{i}]") for i, c in enumerate(raw["columns"]))
    ids = [c.id for c in columns]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{where}.columns: duplicate column id in {ids}")
    for column in columns:
        for ref in column.mean_of:
            if ref not in ids or ref == column.id:
                raise ValueError(f"{where}.columns.{column.id}.mean_of: {ref!r} is not another column id")
    rows = tuple(_row(_mapping(r, f"{where}.rows[{i}]"), f"{where}.rows[{i}]", raw.get("framework"), set(ids))
                 for i, r in enumerate(raw["rows"]))
    row_ids = [r.id for r in rows]
    if len(set(row_ids)) != len(row_ids):
        raise ValueError(f"{where}.rows: duplicate row id in {row_ids}")
    benchmarks = {str(k): _strings(v, f"{where}.benchmarks.{k}") for k, v in _mapping(raw.get("benchmarks"), f"{where}.benchmarks").items()}
    for column in columns:
        if column.benchmark:
            benchmarks.setdefault(column.benchmark, ())
    framework_args = {str(k): _strings(v, f"{where}.framework_args.{k}")
                      for k, v in _mapping(raw.get("framework_args"), f"{where}.framework_args").items()}
    return TableSpec(name=str(raw["name"]), title=str(raw.get("title", raw["name"])), source=str(raw.get("source", "")),
                     columns=columns, rows=rows, benchmarks=benchmarks, framework_args=framework_args,
                     notes=_strings(raw.get("notes"), f"{where}.notes"))


def load_spec(name_or_path: str | Path) -> TableSpec:
    """`configs/tables/<name>.yaml`, or a YAML file path; one error naming the file otherwise."""
    import yaml

    path = Path(name_or_path)
    if not path.suffix:
        path = TABLES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in TABLES_DIR.glob("*.yaml")))
        raise ValueError(f"table={name_or_path}: no table spec {path}; known tables: {known}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from None
    return replace(spec_from_mapping(raw, where=str(path)), path=str(path))


def list_tables() -> list[str]:
    return sorted(p.stem for p in TABLES_DIR.glob("*.yaml"))
