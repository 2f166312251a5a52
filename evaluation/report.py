"""metrics.json + report.md writers (paper-style markdown tables)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from evaluation.config import BenchmarkConfig
from evaluation.registry import Benchmark


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "n/a" if value is None else str(value)


def markdown_table(rows: Sequence[dict], fmt=_fmt) -> str:
    """Rows of dicts (same keys) -> markdown; floats rounded to 2 decimals unless `fmt` says otherwise."""
    if not rows:
        return "_(no rows)_\n"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render(metrics: dict) -> str:
    """The report: settings (variant, fps, protocol, STC N/r/k), headline numbers, tables, counts, notes."""
    settings = metrics["settings"]
    out = [f"# {settings.get('benchmark', '?')} — {settings.get('framework', '?')} ({settings.get('compression', 'none')})\n\n"]
    out.append("## Settings\n")
    out.append(markdown_table([{"setting": k, "value": v} for k, v in settings.items()], fmt=lambda v: "off" if v is None else str(v)))
    out.append("\n## Results (accuracy, %)\n")
    out.append(markdown_table([{"metric": k, "accuracy": v} for k, v in metrics["headline"].items()]))
    for name, rows in metrics["tables"].items():
        out.append(f"\n### {name}\n")
        out.append(markdown_table(rows))
    counts = metrics["counts"]
    rejected = metrics.get("rejected") or {}
    out.append(f"\n## Counts\n\nitems: {counts['n']}, correct: {counts['correct']}, "
               f"unanswered: {counts['unanswered']}, errors: {counts['errors']}, "
               f"rejected annotation records: {rejected.get('count', 0)}\n")
    if metrics.get("cost", {}).get("items_timed"):
        out.append("\n### Host cost (summed over items; ms, frames, tokens)\n")
        out.append(markdown_table([{"quantity": k, "value": v} for k, v in metrics["cost"].items()]))
    if rejected.get("count"):
        out.append(f"\n### Rejected records (reason)\n\n{rejected['count']} annotation record(s) could not be read and are "
                   "not in any denominator:\n\n")
        out.append(markdown_table([{"reason": r, "records": n} for r, n in rejected["reasons"].items()]))
        out.append("\nFirst of them:\n\n" + "\n".join(f"- {m}" for m in rejected["examples"][:5]) + "\n")
    if metrics.get("error_reasons"):
        out.append("\n### Errors by reason\n")
        out.append(markdown_table([{"reason": r, "items": n} for r, n in metrics["error_reasons"].items()]))
    if metrics.get("notes"):
        out.append("\n## Notes\n\n" + "\n".join(f"- {n}" for n in metrics["notes"]) + "\n")
    return "".join(out)


def write_outputs(out_dir: str | Path, metrics: dict, benchmark: Benchmark, scored: Sequence[dict],
                  cfg: BenchmarkConfig) -> list[str]:
    """Write metrics.json, report.md and any benchmark artifact (EgoSchema submission.csv)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n")
    (out_dir / "report.md").write_text(render(metrics))
    files = [str(out_dir / "metrics.json"), str(out_dir / "report.md")]
    files += plot_accuracy(out_dir / "accuracy.png", metrics)
    if benchmark.write_artifacts is not None:
        files += benchmark.write_artifacts(scored, cfg, out_dir)
    return files


def plot_accuracy(path: Path, metrics: dict) -> list[str]:
    """Bar chart of the first table's per-group accuracy (per task / type / duration) -> PNG."""
    rows = next(iter(metrics["tables"].values()), [])
    if not rows or "accuracy" not in rows[0]:
        return []
    try:
        import matplotlib
    except ImportError:  # a bare GPU machine: the tables are the result, the plot is a convenience
        return []

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [str(next(iter(row.values()))) for row in rows]
    values = [row["accuracy"] for row in rows]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(rows) + 1.5), 3.2))
    ax.bar(range(len(rows)), values, color="#4C72B0")
    ax.set_xticks(range(len(rows)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    settings = metrics["settings"]
    ax.set_title(f"{settings.get('benchmark')} / {settings.get('framework')} / {settings.get('compression', 'none')}\n"
                 f"model: {settings.get('model', 'unknown')}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [str(path)]
