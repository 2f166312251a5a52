"""speed.png: ViT per-frame latency bars, pre-fill latency per chunk size, streams-vs-throughput curve,
end-to-end ingest per frame per host variant."""

from __future__ import annotations

from pathlib import Path

from speed_benchmark.records import Row


def plot(rows: list[Row], title: str, path: Path) -> Path | None:
    """Write the three-panel figure; returns None when there is nothing to draw."""
    from matplotlib.figure import Figure  # no pyplot: no process-wide backend/state is touched

    vit = [r for r in rows if r.case == "vit"]
    pre = [r for r in rows if r.case == "prefill"]
    ms = [r for r in rows if r.case == "multistream"]
    e2e = [r for r in rows if r.case == "e2e"]
    if not (vit or pre or ms or e2e):
        return None
    fig = Figure(figsize=(21, 4.8))
    axes = fig.subplots(1, 4)
    if vit:
        ax = axes[0]
        colors = ["#888888" if r.method == "baseline" else "#1f77b4" for r in vit]
        ax.bar(range(len(vit)), [r.stats["median"] for r in vit], color=colors,
               yerr=[[r.stats["median"] - r.stats["min"] for r in vit], [r.stats["p90"] - r.stats["median"] for r in vit]])
        ax.set_xticks(range(len(vit)), [r.name for r in vit], rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("ms per frame (median, min..p90)")
        ax.set_title("ViT encode, one stream")
    if pre:
        ax = axes[1]
        names = sorted({r.name.split(" c=")[0] for r in pre}, key=lambda n: (n != "baseline", n))
        chunks = sorted({r.params["frames_per_chunk"] for r in pre})
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            vals = [next((r.stats["median"] for r in pre if r.name == f"{name} c={c}"), 0) for c in chunks]
            ax.bar([j + i * width for j in range(len(chunks))], vals, width, label=name)
        ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(chunks))], [str(c) for c in chunks])
        ax.set_xlabel("frames per pre-fill call")
        ax.set_ylabel("ms for all frames (median)")
        ax.set_title("LLM pre-fill")
        ax.legend(fontsize=8)
    if ms:
        ax = axes[2]
        line = lambda r: (r.method, r.mode, bool(r.params.get("stagger")))  # noqa: E731 (lockstep and staggered apart)
        for key in sorted({line(r) for r in ms}):
            sub = sorted([r for r in ms if line(r) == key], key=lambda r: r.params["S"])
            label = f"{key[0]} {key[1]}" + (" staggered" if key[2] else "")
            ax.plot([r.params["S"] for r in sub], [r.stats["median"] for r in sub], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent streams S")
        ax.set_ylabel("frames/s (median)")
        ax.set_title("Batched multi-stream ViT")
        ax.legend(fontsize=8)
    if e2e:
        ax = axes[3]
        colors = ["#888888" if r.method == "baseline" else "#2ca02c" for r in e2e]
        ax.bar(range(len(e2e)), [r.stats["median"] for r in e2e], color=colors,
               yerr=[[r.stats["median"] - r.stats["min"] for r in e2e], [r.stats["p90"] - r.stats["median"] for r in e2e]])
        ax.set_xticks(range(len(e2e)), [r.name for r in e2e], rotation=35, ha="right", fontsize=7)
        ax.set_ylabel("ingest ms per frame (median, min..p90)")
        ax.set_title("End-to-end ingest (host)")
    for ax in axes:
        if not ax.has_data():
            ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
