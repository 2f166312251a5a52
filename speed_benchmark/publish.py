"""Turn a GPU run folder into the committed report `docs/speed/<gpu>.md` (+ its plot).

    python -m speed_benchmark.publish results/speed/h100/llava_ov_7b [--docs docs/speed] [--name h100]

The page holds the exact command, the environment, the full table, the plot, and a breakdown that
explains each target: reference vs selective frame times against the graphed dense frame, the profile
(kernel launches and device-busy time per frame, i.e. how launch-bound a variant is), and the pruner's
share of the STC pre-fill. The human-written closing note goes at the end (a placeholder marks it).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path


def slug(device_name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-") or "device"


def _get(rows, case, name):
    return next((r for r in rows if r["case"] == case and r["name"] == name), None)


def _vit_breakdown(rows: list[dict]) -> list[str]:
    out = []
    dense = _get(rows, "vit", "baseline graph") or _get(rows, "vit", "baseline eager")
    for r in rows:
        if r["case"] != "vit" or r["method"] != "stc":
            continue
        ref, sel = r["extra"].get("reference_ms"), r["extra"].get("selective_ms")
        line = f"- `{r['name']}`: reference frames {ref['median']:.2f} ms" if ref else f"- `{r['name']}`:"
        if sel:
            line += f", selective frames {sel['median']:.2f} ms"
        if dense and sel:
            line += (f" (dense {dense['mode']} frame {dense['stats']['median']:.2f} ms; selective/dense = "
                     f"{sel['median'] / dense['stats']['median']:.2f})")
        prof = r["extra"].get("profile") or {}
        if prof.get("kernels_per_frame"):
            busy = prof.get("device_busy_ms_per_frame") or 0.0
            line += (f"; profile: {prof['kernels_per_frame']:.0f} kernels/frame, device busy {busy:.2f} ms of "
                     f"{r['stats']['median']:.2f} ms per frame ({100 * busy / r['stats']['median']:.0f}%)")
        out.append(line)
    return out


def _prefill_breakdown(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        if r["case"] != "prefill" or r["method"] != "baseline":
            continue
        c = r["params"]["frames_per_chunk"]
        stc, prune = _get(rows, "prefill", f"stc c={c}"), _get(rows, "pruner", f"pruner c={c}")
        if stc:
            line = (f"- {c} frame(s) per call: baseline {r['stats']['median']:.1f} ms, STC LLM {stc['stats']['median']:.1f} ms "
                    f"(x{stc['measured_fraction']:.2f}, theory x{stc['theory_fraction']:.2f})")
            if prune:
                line += f", pruner {prune['stats']['median']:.1f} ms ({prune['extra']['ms_per_frame']:.2f} ms/frame)"
            out.append(line)
    return out


def _table(result: dict, run_dir: Path) -> str:
    """The run's tables re-rendered from results.json with today's `report.render` (so a fix to the report
    applies to a page published from an older run); the run's own table.md if its rows do not load."""
    from speed_benchmark.records import Row
    from speed_benchmark.report import render as render_report

    try:
        rows = [Row(**row) for row in result["rows"]]
        text = render_report(result, rows)
    except (TypeError, KeyError) as error:
        print(f"publish: rows of {run_dir / 'results.json'} do not load ({error!r}); using table.md")
        text = (run_dir / "table.md").read_text()
    return text.split("\n", 1)[1]


def render(run_dir: Path, image: str) -> str:
    result = json.loads((run_dir / "results.json").read_text())
    table = _table(result, run_dir)
    env, rows = result["environment"], result["rows"]
    lines = [f"# STC speed on {env['device_name']} (preset `{result['config']['preset']['name']}`)", "",
             "Exact command (from the repository root):", "", "```bash", result["command"], "```", "",
             f"Run started {result['started_utc']}, wall time {result['wall_s']:.0f} s.", table, "",
             f"![latency and throughput]({image})", "", "## Breakdown", "", "ViT, one stream:"]
    lines += _vit_breakdown(rows) or ["- (no STC ViT rows)"]
    lines += ["", "Pre-fill:"] + (_prefill_breakdown(rows) or ["- (no pre-fill rows)"])
    lines += ["", "## Closing note", "", "<!-- why each missed target was missed, from the breakdown and profile/ -->", ""]
    return "\n".join(lines)


def publish(run_dir: Path, docs_dir: Path, name: str | None = None) -> Path:
    result = json.loads((run_dir / "results.json").read_text())
    stem = name or slug(result["environment"]["device_name"])
    docs_dir.mkdir(parents=True, exist_ok=True)
    image = ""
    if (run_dir / "speed.png").is_file():
        image = f"{stem}.png"
        shutil.copyfile(run_dir / "speed.png", docs_dir / image)
    page = docs_dir / f"{stem}.md"
    page.write_text(render(run_dir, image))
    return page


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="write docs/speed/<gpu>.md from a harness run folder")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--docs", type=Path, default=Path("docs/speed"))
    parser.add_argument("--name", default=None, help="page name (default: slug of the GPU name)")
    args = parser.parse_args(argv)
    print(publish(args.run_dir, args.docs, args.name))


if __name__ == "__main__":
    main()
