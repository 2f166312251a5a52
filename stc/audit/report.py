"""Write an audit's results: audit.json (summary + per-frame records), audit.md, audit.png."""

from __future__ import annotations

import json
from pathlib import Path


def write_report(result, out: str | Path, command: str, video: str) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "audit.json", "md": out / "audit.md", "png": out / "audit.png"}
    data = {"command": command, "video": video, **result.to_json()}
    paths["json"].write_text(json.dumps(data, indent=1))
    paths["md"].write_text(markdown(result, command, video))
    plot(result, paths["png"], title=f"{Path(video).name}: {policy_label(result.config)}")
    return paths


def policy_label(config: dict) -> str:
    if config["refresh"] == "fixed":
        return f"fixed N={config['cache_interval']}, r={config['update_ratio']}"
    ratio = f"r={config['update_ratio']}"
    if config["max_update_ratio"]:
        ratio += f"..{config['max_update_ratio']} gain {config['ratio_gain']}"
    return (f"adaptive tau={config['change_tau']} theta={config['refresh_threshold']} "
            f"interval=[{config['min_interval']},{config['max_interval']}] {ratio}")


def summary_row(result) -> str:
    s = result.summary()
    return (f"| {policy_label(result.config)} | {s['mean_cosine']:.4f} | {s['min_frame_cosine']:.4f} "
            f"| {s['flop_fraction']:.3f} | {s['reference_fraction']:.2f} |")


def markdown(result, command: str, video: str) -> str:
    s = result.summary()
    lines = [
        f"# STC fidelity audit: {Path(video).name}", "", f"`{command}`", "",
        f"{s['num_frames']} frames, {s['tokens_per_frame']} tokens, {s['num_layers']} layers, "
        f"dense tower {s['dense_frame_gflops']:.2f} GFLOP/frame.", "",
        "| policy | mean cosine | worst frame | FLOP fraction | reference frames |", "|---|---|---|---|---|",
        summary_row(result), "", f"Worst frame: {s['worst_frame']}.", "",
        "| frame | t (s) | reference | k per layer | change | mean cos | min cos |", "|---|---|---|---|---|---|---|",
    ]
    for f in result.frames:
        change = "" if f.change is None else f"{f.change:.3f}"
        lines.append(f"| {f.index} | {f.time_s:.1f} | {'yes' if f.reference else ''} | {f.recomputed_per_layer[0]} "
                     f"| {change} | {f.mean_cosine:.4f} | {f.min_cosine:.4f} |")
    return "\n".join(lines) + "\n"


def plot(result, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    xs = [f.index for f in result.frames]
    ax.plot(xs, [f.mean_cosine for f in result.frames], "-", label="mean token cosine")
    ax.plot(xs, [f.min_cosine for f in result.frames], ":", label="min token cosine")
    refs = [f.index for f in result.frames if f.reference]
    ax.scatter(refs, [1.0] * len(refs), marker="v", color="k", label="reference frame", zorder=3)
    ax.set_xlabel("frame")
    ax.set_ylabel("cosine to full recompute")
    ax.set_title(f"{title} (FLOPs {result.flop_fraction:.2f})", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
