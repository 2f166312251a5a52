"""Compare two evaluation runs item by item: `python -m evaluation.compare RUN_A RUN_B [--out FILE.md]`.

Why: a sharded run (torchrun / accelerate, then `evaluation.merge`) must give exactly the predictions and
the report of a single-process run of the same items; this checks it. Compared: the set of ids, each
item's response / error / gold, and the metrics (headline, tables, counts, rejected) — not settings or
host timings, which legitimately differ. Exit code 0 when identical, 1 otherwise; the markdown summary
lists the first differences.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evaluation import predictions as P
from evaluation.cli import user_errors

_FIELDS = ("response", "error", "gold", "task", "new_frames")
_METRICS = ("headline", "tables", "counts", "rejected")


def _load(run_dir: Path) -> tuple[dict, dict]:
    preds = run_dir / "predictions.jsonl"
    metrics = run_dir / "metrics.json"
    if not preds.is_file() or not metrics.is_file():
        raise FileNotFoundError(f"{run_dir}: needs predictions.jsonl and metrics.json (merge a sharded run first)")
    return {p["id"]: p for p in P.read_predictions(preds)}, json.loads(metrics.read_text())


def compare(a: Path, b: Path) -> dict:
    preds_a, metrics_a = _load(Path(a))
    preds_b, metrics_b = _load(Path(b))
    only_a, only_b = sorted(set(preds_a) - set(preds_b)), sorted(set(preds_b) - set(preds_a))
    differ = [(i, f, preds_a[i].get(f), preds_b[i].get(f)) for i in sorted(set(preds_a) & set(preds_b))
              for f in _FIELDS if preds_a[i].get(f) != preds_b[i].get(f)]
    metric_diffs = [k for k in _METRICS if metrics_a.get(k) != metrics_b.get(k)]
    return {"items_a": len(preds_a), "items_b": len(preds_b), "only_a": only_a, "only_b": only_b,
            "field_differences": differ, "metric_differences": metric_diffs,
            "identical": not (only_a or only_b or differ or metric_diffs),
            "headline_a": metrics_a.get("headline"), "headline_b": metrics_b.get("headline"),
            "counts_a": metrics_a.get("counts"), "counts_b": metrics_b.get("counts")}


def render(result: dict, a: str, b: str) -> str:
    lines = [f"## Run comparison: `{a}` vs `{b}`", "",
             f"**{'IDENTICAL' if result['identical'] else 'DIFFERENT'}** predictions and report", "",
             "| | A | B |", "|---|---|---|",
             f"| items | {result['items_a']} | {result['items_b']} |",
             f"| counts | {result['counts_a']} | {result['counts_b']} |"]
    for key in result["headline_a"] or {}:
        lines.append(f"| {key} | {result['headline_a'][key]:.2f} | {(result['headline_b'] or {}).get(key, float('nan')):.2f} |")
    lines += ["", f"- ids only in A: {len(result['only_a'])} {result['only_a'][:10]}",
              f"- ids only in B: {len(result['only_b'])} {result['only_b'][:10]}",
              f"- items whose {'/'.join(_FIELDS)} differ: {len(result['field_differences'])}",
              f"- metric sections that differ: {result['metric_differences'] or 'none'}"]
    for item, name, va, vb in result["field_differences"][:10]:
        lines.append(f"  - {item}.{name}: {va!r} vs {vb!r}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--out", help="also write the markdown summary here")
    args = parser.parse_args(argv)
    with user_errors():
        result = compare(Path(args.run_a), Path(args.run_b))
    text = render(result, args.run_a, args.run_b)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    sys.exit(0 if result["identical"] else 1)


if __name__ == "__main__":
    main()
