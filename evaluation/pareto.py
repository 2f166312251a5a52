"""Accuracy vs cost per benchmark, with the paper's points overlaid:
`python -m evaluation.pareto results=<dir> [x=latency|tokens_kept|vit_flops] [out=<dir>] [paper=rekv_main]`.

Every `<results>/*/metrics.json` is one point (typically a Hydra multirun over N, r, k or over methods,
see scripts/pareto_sweep.sh). y = the benchmark's headline number, chosen by the paper table's column for
that benchmark (configs/tables/rekv_main.yaml) so plots and tables agree. x:
  latency      host ms per frame from the run's own timings (ViT + pruner + pre-fill) / frames;
               paper points: (ViT + pre-fill ms over 16 frames) / 16 from configs/tables/latency.yaml
  tokens_kept  share of visual tokens kept (metrics cost.visual_token_keep_ratio); paper points: row budget
  vit_flops    theoretical ViT FLOP fraction F(N, r) at the LLaVA-OV SigLIP-so400m shape (1 without the
               cacher); the paper published no FLOP numbers, so no paper points
Writes `pareto-<benchmark>-<x>.png` and `pareto-<x>.csv` (every point, with an on-front flag: no other
point of the same benchmark is at least as accurate and at least as cheap, better in one).
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from evaluation.cli import key_values
from evaluation.tables.collect import metric_value, read_json
from evaluation.tables.spec import TableSpec, load_spec

X_AXES = ("latency", "tokens_kept", "vit_flops")
X_LABELS = {"latency": "host latency (ms per frame)", "tokens_kept": "visual tokens kept (share)",
            "vit_flops": "ViT FLOP fraction (theory, SigLIP-so400m)"}
# the paper table column whose number is each benchmark's y (OVO: the README's headline Forward column)
Y_COLUMNS = {"ovobench": "ovo_fw", "streamingbench": "sb", "egoschema": "ego", "mlvu": "mlvu", "videomme": "vmme"}


@dataclass(frozen=True)
class Point:
    benchmark: str
    label: str
    x: float
    y: float
    source: str          # run dir, or "paper"
    on_front: bool = False


def run_x(metrics: dict, axis: str) -> Optional[float]:
    """The run's cost on `axis`, or None when the run did not record it."""
    cost, settings = metrics.get("cost") or {}, metrics.get("settings") or {}
    if axis == "tokens_kept":
        value = cost.get("visual_token_keep_ratio")
        return float(value) if isinstance(value, (int, float)) else None
    if axis == "latency":
        frames = cost.get("frames") or cost.get("frames_ingested")
        parts = [cost.get(k) for k in ("vit_ms", "pruner_ms", "prefill_ms")]
        if not frames or not isinstance(parts[0], (int, float)):
            return None
        return sum(p for p in parts if isinstance(p, (int, float))) / float(frames)
    N, r = settings.get("stc_N_cache_interval"), settings.get("stc_r_update_ratio")
    if N is None or r is None:
        return 1.0
    from speed_benchmark.flops import ViTShape, vit_fraction

    return vit_fraction(ViTShape(d=1152, m=4304, T=729, layers=26), int(N), float(r))


def run_label(metrics: dict, run_dir: Path) -> str:
    s = metrics.get("settings") or {}
    knobs = [f"{name}={s[key]}" for name, key in (("N", "stc_N_cache_interval"), ("r", "stc_r_update_ratio"),
                                                   ("k", "stc_k_tokens_per_frame")) if s.get(key) is not None]
    return f"{s.get('compression', run_dir.name)}" + (f" ({', '.join(knobs)})" if knobs else "")


def our_points(results: Path, spec: TableSpec, axis: str) -> list[Point]:
    points = []
    for path in sorted(results.glob("*/metrics.json")):
        metrics, _ = read_json(path)
        if metrics is None:
            continue
        bench = (metrics.get("settings") or {}).get("benchmark")
        if bench not in Y_COLUMNS:
            continue
        y, _ = metric_value(metrics, spec.column(Y_COLUMNS[bench]))
        x = run_x(metrics, axis)
        if x is not None and y is not None:
            points.append(Point(bench, run_label(metrics, path.parent), x, y, str(path.parent)))
    return points


def paper_points(spec: TableSpec, latency: Optional[TableSpec], axis: str) -> list[Point]:
    """The paper's rows that state both the benchmark's number and a cost on this axis."""
    points = []
    lat_rows = {r.id: r for r in latency.rows} if latency else {}
    for row in spec.rows:
        if axis == "tokens_kept":
            x = row.budget
        elif axis == "latency" and row.id in lat_rows:
            paper = lat_rows[row.id].paper
            x = None if paper.get("vit_ms") is None or paper.get("prefill_ms") is None else (paper["vit_ms"] + paper["prefill_ms"]) / 16
        else:
            x = None
        for bench, column in Y_COLUMNS.items():
            y = row.paper.get(column)
            if x is not None and y is not None:
                points.append(Point(bench, f"paper: {row.title}", float(x), float(y), "paper"))
    return points


def mark_front(points: list[Point]) -> list[Point]:
    """Flag the points no other point dominates (higher or equal y at lower or equal x, one strictly)."""
    from dataclasses import replace

    def dominated(p: Point) -> bool:
        return any(q is not p and q.y >= p.y and q.x <= p.x and (q.y > p.y or q.x < p.x) for q in points)

    return [replace(p, on_front=not dominated(p)) for p in points]


def plot(path: Path, bench: str, axis: str, ours: list[Point], paper: list[Point]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    front = sorted((p for p in ours if p.on_front), key=lambda p: p.x)
    ax.scatter([p.x for p in ours], [p.y for p in ours], color="#4C72B0", label="ours", zorder=3)
    if front:
        ax.plot([p.x for p in front], [p.y for p in front], color="#4C72B0", lw=1, alpha=0.6, label="our Pareto front")
    for p in ours:
        ax.annotate(p.label, (p.x, p.y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if paper:
        ax.scatter([p.x for p in paper], [p.y for p in paper], marker="*", s=90, color="#C44E52", label="paper", zorder=4)
        for p in paper:
            ax.annotate(p.label.removeprefix("paper: "), (p.x, p.y), fontsize=6, color="#C44E52", xytext=(3, -8), textcoords="offset points")
    ax.set_xlabel(X_LABELS[axis])
    ax.set_ylabel(f"{bench} accuracy (%)")
    ax.set_title(f"{bench}: accuracy vs {axis}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(argv: list[str]) -> str:
    defaults = {"results": "results/eval", "out": "results/pareto", "x": "latency", "paper": "rekv_main", "latency": "latency"}
    args = key_values(argv, defaults, defaults)
    if args["x"] not in X_AXES:
        raise ValueError(f"x={args['x']}: must be one of {X_AXES}")
    results, out, axis = Path(args["results"]), Path(args["out"]), args["x"]
    if not results.is_dir():
        raise ValueError(f"results={results}: not a folder")
    spec = load_spec(args["paper"])
    latency = load_spec(args["latency"]) if args["latency"] else None
    ours, paper = our_points(results, spec, axis), paper_points(spec, latency, axis)
    if not ours:
        raise ValueError(f"results={results}: no */metrics.json with a known benchmark and a {axis} value")
    out.mkdir(parents=True, exist_ok=True)
    rows, lines = [], [f"# accuracy vs {axis} ({len(ours)} runs under {results})"]
    for bench in sorted({p.benchmark for p in ours}):
        mine = mark_front([p for p in ours if p.benchmark == bench])
        theirs = [p for p in paper if p.benchmark == bench]
        png = out / f"pareto-{bench}-{axis}.png"
        plot(png, bench, axis, mine, theirs)
        rows += mine + theirs
        lines.append(f"{bench}: {len(mine)} runs, {sum(p.on_front for p in mine)} on the front, "
                     f"{len(theirs)} paper points -> {png}")
    with (out / f"pareto-{axis}.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["benchmark", "label", axis, "accuracy", "on_front", "source"])
        for p in rows:
            writer.writerow([p.benchmark, p.label, f"{p.x:.6g}", f"{p.y:.4g}", int(p.on_front) if p.source != "paper" else "", p.source])
    lines.append(f"wrote {out / f'pareto-{axis}.csv'}")
    return "\n".join(lines) + "\n"


def main() -> None:
    from evaluation.cli import user_errors

    with user_errors():  # one line naming the bad argument, exit code 2 (traceback with HYDRA_FULL_ERROR=1)
        sys.stdout.write(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
