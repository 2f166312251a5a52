"""Baselines vs STC on the ReKV host at the released size (random weights): one latency table.

    python scripts/gpu/baselines_speed.py --out results/baselines_speed                       # H200, < 4 min
    python scripts/gpu/baselines_speed.py --out /tmp/b --preset tiny --device cpu --dtype float32 \
        --frames 4 --repeats 1 --budgets 96,128                                                   # CPU smoke

For every method at every budget (tokens per frame out of LLaVA-OV's 196; default the paper's 49 and
STC's 64) — full ReKV, STC-Pruner, STC (Cacher N=2, r=0.25 + Pruner), random-drop, VisionZip, VidCom²
(released and two-score; released also with 16-frame pre-fill calls, `vidcom2_c16`), ToMe — and once for the budget-free DyCoke / StreamDyCoke rows: reset, ingest
`--frames` frames of a synthetic temporally redundant video, answer one 16-token question; medians of
`--repeats` runs after one warm-up. Reported per frame: ViT ms (tower; ToMe's merging is inside it),
method overhead ms (the host's "pruner" stage: side information + TOKENS methods), LLM pre-fill ms,
end-to-end ingest ms (wall clock around `ingest`), tokens kept, answer wall ms. Budgets are scaled to the
preset's pooled tokens (tiny: 25). One failing row (e.g. a budget ToMe cannot reach in a tiny tower) is
reported and does not stop the others. Writes baselines_speed.json and baselines_speed.md to --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere in the repo

from frameworks.common.llava_loading import build_random_llava_onevision  # noqa: E402
from frameworks.common.llava_video import pooled_grid_tokens  # noqa: E402
from frameworks.common.model_sizes import llava_onevision_config  # noqa: E402
from frameworks.protocol import Query  # noqa: E402
from frameworks.rekv.config import ReKVConfig  # noqa: E402
from frameworks.rekv.host import ReKVHost  # noqa: E402

QUESTION = Query(prompt="Question: What is the person doing?\nOptions:\n(A) Cooking\n(B) Running\n(C) Reading\n"
                        "(D) Sleeping\nOnly give the best option.", retrieval_text="What is the person doing?",
                 answer_prefix="Best option: (", max_new_tokens=16)


def budget_rows(k: int) -> dict[str, dict]:
    """Compression specs at budget k (tokens per frame)."""
    return {
        "stc_pruner": {"pruner": {"tokens_per_frame": k}},
        "stc": {"cacher": {"update_ratio": 0.25, "cache_interval": 2}, "pruner": {"tokens_per_frame": k}},
        "random_drop": {"random_drop": {"tokens_per_frame": k}},
        "visionzip": {"visionzip": {"tokens_per_frame": k}},
        "vidcom2": {"vidcom2": {"tokens_per_frame": k}},
        "vidcom2_two_score": {"vidcom2": {"tokens_per_frame": k, "anchor": "memory", "frame_budgets": False,
                                          "low_variance_channels": False}},
        "tome": {"tome": {"tokens_per_frame": k}},
    }


FREE_ROWS = {  # no per-frame budget
    "full": {},
    "dycoke": {"dycoke_ttm": {}, "dycoke_kv": {}},
    "dycoke_released": {"dycoke_ttm": {"sort_kept": False}, "dycoke_kv": {"apply_pruning": False}},
    "streamdycoke": {"streamdycoke_ttm": {}, "streamdycoke_cache": {}},
}


def synthetic_video(count: int, size: int, seed: int = 0, drift: float = 8.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (size, size, 3), generator=generator).float()
    frames = torch.empty(count, size, size, 3, dtype=torch.uint8)
    for i in range(count):
        frames[i] = image.clamp(0, 255).to(torch.uint8)
        image += (torch.rand(size, size, 3, generator=generator) * 2 - 1) * drift
    return frames


def _wall(device, fn) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1000.0


def measure(host: ReKVHost, frames: torch.Tensor, repeats: int) -> dict:
    """Warm-up + `repeats` runs; medians per frame."""
    runs = []
    for index in range(repeats + 1):
        host.reset()
        ingest = _wall(host.device, lambda: host.ingest(frames))
        answer = _wall(host.device, lambda: host.answer(QUESTION))
        t = host.timings
        if index:
            n = t.frames
            runs.append({"vit_ms": t.vit_ms / n, "overhead_ms": t.pruner_ms / n, "prefill_ms": t.prefill_ms / n,
                         "ingest_ms": ingest / n, "answer_ms": answer, "tokens_per_frame": t.visual_tokens_kept / n,
                         "peak_memory_mb": t.peak_memory_mb})
    stats = host.compression.stats()
    return {**{key: statistics.median(r[key] for r in runs) for key in runs[0] if runs[0][key] is not None},
            "runs": runs, "compression_stats": stats}


def markdown(report: dict) -> str:
    s = report["settings"]
    lines = [f"# Baselines vs STC on ReKV ({report['env']['device_name']}, preset {s['preset']}, {s['dtype']}, "
             "random weights)", "",
             f"{s['frames']} frames of a synthetic redundant stream, frames_per_chunk {s['frames_per_chunk']}, "
             f"medians of {s['repeats']} runs after one warm-up; per-frame milliseconds. Method overhead = the "
             "host's pruner stage (tower side information + TOKENS methods); ToMe's cost is inside ViT.", "",
             "| method | budget | tokens kept / frame | ViT | method overhead | LLM pre-fill | ingest / frame (wall) | "
             "vs full | answer 16 tok (wall) |", "|---|---|---|---|---|---|---|---|---|"]
    full = report["rows"].get("full", {}).get("ingest_ms")
    for label, row in report["rows"].items():
        ratio = f"{row['ingest_ms'] / full:.2f}x" if full else "-"
        lines.append(f"| {row['method']} | {row['budget']} | {row['tokens_per_frame']:.1f} | {row['vit_ms']:.2f} | "
                     f"{row['overhead_ms']:.2f} | {row['prefill_ms']:.2f} | {row['ingest_ms']:.2f} | {ratio} | "
                     f"{row['answer_ms']:.1f} |")
    for label, error in report["errors"].items():
        lines.append(f"\n**{label} failed:** `{error}`")
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--preset", default="7b", choices=["7b", "0.5b", "tiny"])
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--frames-per-chunk", type=int, default=1)
    parser.add_argument("--budgets", default="49,64", help="tokens per frame out of 196 (scaled to the preset)")
    parser.add_argument("--methods", default="", help="comma list of row names (default: all)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    config = llava_onevision_config(args.preset)
    vision = config.vision_config
    pooled = pooled_grid_tokens(vision.image_size, vision.patch_size)
    loaded = build_random_llava_onevision(config, args.dtype, args.device)
    device = loaded.model.device
    frames = synthetic_video(args.frames, vision.image_size)
    settings = ReKVConfig(dtype=args.dtype, device=args.device, frames_per_chunk=args.frames_per_chunk)
    rows: list[tuple[str, str, object, dict]] = [(name, name, "-", spec) for name, spec in FREE_ROWS.items()]
    for budget in (int(b) for b in args.budgets.split(",") if b):
        k = max(1, round(budget * pooled / 196))
        rows += [(f"{name}@{budget}", name, f"{k}/{pooled}", spec) for name, spec in budget_rows(k).items()]
        # released VidCom²'s frame budgets need several frames per call (baselines_table.sh uses 16)
        rows.append((f"vidcom2_c16@{budget}", "vidcom2_c16", f"{k}/{pooled}", budget_rows(k)["vidcom2"]))
    wanted = {m for m in args.methods.split(",") if m}
    report = {"env": _environment(device), "settings": vars(args), "rows": {}, "errors": {}}
    for label, method, budget, spec in rows:
        if wanted and method not in wanted:
            continue
        host = None
        try:
            chunked = ReKVConfig(**{**settings.__dict__, "frames_per_chunk": 16}) if method.endswith("_c16") else settings
            host = ReKVHost(loaded, chunked, spec)
            report["rows"][label] = {"method": method, "budget": budget, **measure(host, frames, args.repeats)}
            print(f"[row] {label}: {report['rows'][label]['ingest_ms']:.2f} ms/frame", flush=True)
        except Exception as error:  # keep the other rows
            report["errors"][label] = f"{type(error).__name__}: {error}"
            print(f"[error] {label}: {report['errors'][label]}", flush=True)
        finally:
            if host is not None:
                host.close()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(report)
    (out / "baselines_speed.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "baselines_speed.md").write_text(text)
    print(text)
    return report


def _environment(device: torch.device) -> dict:
    import transformers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {"device": str(device), "device_name": name, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version()}


if __name__ == "__main__":
    run(parse_args())
