"""`python -m stc.audit.sweep <audit keys> stc.cache_interval=2,4,8 stc.update_ratio=0.25,0.5 ... out=<dir>`:
the audit for every combination of comma-separated `stc.*` values, sharing ONE full-recompute pass
(optionally cached on disk with `full_cache=<file.pt>`; the file is reused only when it was written for
the same model, video, fps, frame limit, dtype and preprocessed input shape). Writes `<out>/<i>/audit.{json,md,png}` per combination (exactly what
`python -m stc.audit` writes for it), `<out>/sweep.md` (one row per combination), `<out>/sweep.json`
and `<out>/frontier.png` (mean and worst-frame cosine against the FLOP fraction)."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

from stc.audit.cli import AuditArgumentError, parse_args


def expand(argv: list[str]) -> tuple[list[list[str]], str | None]:
    """Split `stc.k=a,b` into the cartesian product of single-valued argument lists; pull out full_cache."""
    fixed, varying, cache = [], [], None
    for arg in argv:
        key, _, value = arg.partition("=")
        if key == "full_cache":
            cache = value
        elif key.startswith("stc.") and "," in value:
            varying.append([f"{key}={v}" for v in value.split(",")])
        else:
            fixed.append(arg)
    return [fixed + list(combo) for combo in itertools.product(*varying)] if varying else [fixed], cache


def cache_key(args, units) -> list:
    """What a cached full pass depends on: a file written for another model, clip or resolution with the
    same frame count must not be reused."""
    return [str(args.model), str(args.video), float(args.fps), args.max_frames, str(args.dtype), list(units.shape)]


def _full(tower, units, chunk, cache: str | None, key: list):
    import torch

    from stc.audit.runner import full_pass

    if cache and Path(cache).is_file():
        stored = torch.load(cache)
        if isinstance(stored, dict) and stored.get("key") == key:
            return stored["full"]
    full = full_pass(tower.encode, units, chunk)
    if cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"key": key, "full": full}, cache)
    return full


def frontier_plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for policy, marker in (("fixed", "o"), ("adaptive", "s")):
        picked = [r for r in rows if r["config"]["refresh"] == policy]
        if picked:
            ax.scatter([r["flop_fraction"] for r in picked], [r["mean_cosine"] for r in picked], marker=marker,
                       label=f"{policy}: mean")
            ax.scatter([r["flop_fraction"] for r in picked], [r["min_frame_cosine"] for r in picked], marker=marker,
                       facecolors="none", edgecolors="gray", label=f"{policy}: worst frame")
    ax.set_xlabel("FLOP fraction of the dense tower")
    ax.set_ylabel("cosine to full recompute")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    import torch

    from stc.audit.inputs import load_tower, preprocess
    from stc.audit.report import summary_row, write_report
    from stc.audit.runner import audit
    from stc.audit.video import read_frames

    argv = sys.argv[1:] if argv is None else argv
    try:
        combos, cache = expand(argv)
        configs = [parse_args(c) for c in combos]
        first = configs[0]
        frames, times = read_frames(first.video, first.fps, first.max_frames)
        tower = load_tower(first.model, first.size, getattr(torch, first.dtype), first.device)
    except (AuditArgumentError, ValueError) as error:
        print(f"stc.audit.sweep: {error}", file=sys.stderr)
        return 2
    units = preprocess(frames, tower)
    full = _full(tower, units, first.chunk, cache, cache_key(first, units))
    out = Path(first.out)
    rows, lines = [], ["| policy | mean cosine | worst frame | FLOP fraction | reference frames |", "|---|---|---|---|---|"]
    for i, (cfg, combo) in enumerate(zip(configs, combos)):
        result = audit(tower, units, times, cfg.stc, cfg.chunk, full=full)
        command = "python -m stc.audit " + " ".join(a if not a.startswith("out=") else f"out={out / str(i)}" for a in combo)
        write_report(result, out / str(i), command, cfg.video)
        rows.append({**result.summary(), "config": result.config, "command": command})
        lines.append(summary_row(result))
        print(lines[-1], flush=True)
    (out / "sweep.json").write_text(json.dumps(rows, indent=1))
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
    frontier_plot(rows, out / "frontier.png", f"{Path(first.video).name} at {first.fps} fps")
    print(f"wrote {out / 'sweep.md'}, {out / 'sweep.json'}, {out / 'frontier.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
