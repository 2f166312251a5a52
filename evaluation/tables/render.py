"""A filled table in the paper's layout: markdown (table, run settings, missing runs with commands,
notes) and CSV (same cells). Each metric column is followed by the paper's number and ours − paper."""

from __future__ import annotations

import csv
import io
from typing import Optional

from evaluation.tables.collect import Cell, FilledTable

DASH = "–"
NOT_IN_SPEC = "n/a (not in spec)"


def _num(value: Optional[float], digits: int) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _diff(value: Optional[float], digits: int) -> str:
    if value is None:
        return DASH
    text = f"{value:+.{digits}f}"
    return "±" + text[1:] if float(text) == 0 else text


def cell_texts(cell: Cell, digits: int) -> tuple[str, str, str]:
    """(ours, paper, ours − paper) as printed: missing -> "–", unknown paper -> "n/a (not in spec)",
    a run whose settings disagree with the row -> value followed by "†"."""
    ours = _num(cell.value, digits) + ("†" if cell.flags and cell.value is not None else "")
    paper = _num(cell.paper, digits) if cell.paper_known else NOT_IN_SPEC
    return ours, paper, _diff(cell.diff, digits)


def header(filled: FilledTable) -> list[str]:
    names = ["Method"]
    for column in filled.spec.columns:
        names += [column.title, f"{column.title} (paper)", "Δ"]
    return names


def body(filled: FilledTable) -> list[list[str]]:
    rows = []
    for row in filled.spec.rows:
        line = [row.title]
        for column in filled.spec.columns:
            line += list(cell_texts(filled.cells[(row.id, column.id)], column.digits))
        rows.append(line)
    return rows


def _md_table(names: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(n) for n in names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _settings_text(settings: dict) -> str:
    keys = ("framework", "compression", "stc_N_cache_interval", "stc_r_update_ratio", "stc_k_tokens_per_frame",
            "fps", "scoring", "protocol")
    short = lambda k: k.split("_")[1] if k.startswith("stc_") else k  # noqa: E731  stc_N_cache_interval -> N
    parts = [f"{short(k)}={'off' if settings[k] is None else settings[k]}" for k in keys if k in settings]
    extra = settings.get("compression_settings") or {}
    changed = [f"{k}={v}" for k, v in extra.items() if k.endswith((".reuse", ".strategy", ".alpha"))]
    return ", ".join(parts + changed)


def markdown(filled: FilledTable, results: str, speed_root: str) -> str:
    spec = filled.spec
    out = [f"# {spec.title}\n\n"]
    if spec.source:
        out.append(f"Published numbers: {spec.source}. Table spec: `{spec.path or spec.name}`.\n")
    sources = ([f"evaluation runs under `{results}`"] if filled.runs else []) + ([f"speed runs under `{speed_root}`"] if filled.speed else [])
    out.append("Our numbers: " + ", ".join(sources)
               + ". Δ = ours − paper (points, or ms / % for latency). "
               f"{DASH} = not run yet (command below); {NOT_IN_SPEC} = the paper's number is not recoverable; "
               "† = the run's recorded settings differ from the row (see Runs).\n\n")
    out.append(_md_table(header(filled), body(filled)))
    out.append("\n## Rows\n\n")
    out.append(_md_table(["Method", "framework", "compression", "overrides", "note"],
                         [[r.title, r.framework, r.compression_arg, " ".join(r.overrides) or "–", r.note or ""] for r in spec.rows]))
    run_rows = []
    for run in filled.runs:
        items = f"{run.counts.get('n', '?')} items" if run.status == "ok" else ""
        flags = ("; differs: " + "; ".join(run.flags)) if run.flags else ""
        run_rows.append([run.row.title, run.benchmark, f"`{run.run_dir}`", run.status,
                         (_settings_text(run.settings) + (f", {items}" if items else "") + flags) if run.status == "ok" else run.reason])
    if run_rows:
        out.append("\n## Runs (settings recorded in each metrics.json)\n\n")
        out.append(_md_table(["Method", "benchmark", "run dir", "status", "settings"], run_rows))
    if filled.speed:
        out.append("\n### Speed runs\n\n")
        out.append(_md_table(["Method", "results.json", "status", "command"],
                             [[s["row"].title, f"`{s['dir']}/results.json`", s["status"] + ("" if s["complete"] or s["status"] != "ok" else " (partial)"),
                               f"`{s['command']}`"] for s in filled.speed]))
    missing = [(run.row.title, run.benchmark, run.command, run.reason if run.status != "missing" else "")
               for run in filled.runs if run.status != "ok"]
    missing += [(s["row"].title, "speed", s["command"], s["note"]) for s in filled.speed if s["status"] != "ok"]
    seen_speed = set()
    lines = []
    for title, bench, command, reason in missing:
        if bench == "speed":
            if command in seen_speed:
                continue
            seen_speed.add(command)
        lines.append(f"- {title} / {bench}" + (f" ({reason})" if reason else "") + f":\n  `{command}`")
    other = sorted({(r.title, c.missing) for r in spec.rows for col in spec.columns
                    for c in [filled.cells[(r.id, col.id)]] if c.value is None and c.missing and not c.run_missing})
    if lines or other:
        out.append(f"\n## Missing ({DASH}) and how to produce it\n\n")
        out.append("\n".join(lines) + ("\n" if lines else ""))
        out.extend(f"- {title}: {why}\n" for title, why in other)
    if spec.notes:
        out.append("\n## Notes\n\n" + "".join(f"- {n}\n" for n in spec.notes))
    return "".join(out)


def csv_text(filled: FilledTable) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["row_id", *header(filled)])
    for row, line in zip(filled.spec.rows, body(filled)):
        writer.writerow([row.id, *line])
    return buffer.getvalue()
