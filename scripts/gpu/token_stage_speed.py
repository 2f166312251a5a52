"""Token stage (projector -> 2x pool -> TOKENS methods) eager vs CUDA graph at LLaVA-OV-7B size: one table.

    python scripts/gpu/token_stage_speed.py --out results/token_stage_speed                   # H200, < 1 min
    python scripts/gpu/token_stage_speed.py --out /tmp/t --preset tiny --device cpu --dtype float32 \
        --frames 6 --warm 4 --repeats 1                                                        # CPU smoke

What the ReKV host runs between the tower and the LLM (frameworks/common/graphed_tokens.py), alone, on
random tower features [F, 729, 1152] (random-weight projector of the preset): no compression, STC-Pruner
k=64 ("gaussian", history_window 64) and its "dual_anchor" strategy, at 1 and 8 frames per call. Per row,
`--warm` frames first (the pruner's history fills, graphs are captured), then `--frames` frames timed,
`--repeats` times (median). Reported per frame: wall ms (perf_counter around the calls, one sync at the
end: what the host pays), the host's stage ms (CUDA events: "projector" + "pruner"), captures/replays,
and whether the graphed outputs equal the eager ones bit for bit over the timed frames. On CPU only the
eager rows run (no graphs there). Writes token_stage_speed.json and token_stage_speed.md to --out.
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

from frameworks.common.compression import HostCompression  # noqa: E402
from frameworks.common.graphed_tokens import GraphedTokenStage  # noqa: E402
from frameworks.common.llava_video import pool_2x, pooled_grid_tokens  # noqa: E402
from frameworks.common.model_sizes import llava_onevision_config  # noqa: E402
from frameworks.common.timing import EventTimer  # noqa: E402
from stc.compression import TokenSide  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (JSON + markdown)")
    parser.add_argument("--preset", default="7b", help="LLaVA-OV size (frameworks/common/model_sizes.py)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    parser.add_argument("--frames", type=int, default=256, help="timed frames per repeat")
    parser.add_argument("--warm", type=int, default=80, help="untimed frames first (history fills, graphs captured)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunks", default="1,8", help="frames per call")
    return parser.parse_args(argv)


def specs(tokens: int) -> dict:
    k = max(1, round(64 * tokens / 196))  # STC's 64 of 196, scaled to the preset
    return {"none": None,
            f"pruner k={k}": {"pruner": {"tokens_per_frame": k}},
            f"pruner dual_anchor k={k}": {"pruner": {"tokens_per_frame": k, "strategy": "dual_anchor"}}}


def measure(projector, spec, tokens, selected, chunk, graph, args, device) -> tuple[dict, list]:
    timer = EventTimer(device)
    stage = GraphedTokenStage(projector, pool_2x, HostCompression(spec, tokens), timer, graph=graph)
    grid = (int(round(tokens ** 0.5)),) * 2
    walls, stage_ms, outputs = [], [], []
    with torch.inference_mode():
        for repeat in range(args.repeats):
            stage.compression.reset()
            for first in range(0, args.warm, chunk):
                stage(selected[first:first + chunk], TokenSide(grid=grid, frame_offset=first))
            timer.totals()
            timer.reset()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            begin = time.perf_counter()
            for first in range(args.warm, args.warm + args.frames, chunk):
                out = stage(selected[first:first + chunk], TokenSide(grid=grid, frame_offset=first))
                if repeat == 0:
                    outputs.append(out)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            walls.append((time.perf_counter() - begin) * 1000.0 / args.frames)
            totals = timer.totals()
            stage_ms.append((totals.get("projector", 0.0) + totals.get("pruner", 0.0)) / args.frames)
    row = {"wall_ms_per_frame": statistics.median(walls), "stage_ms_per_frame": statistics.median(stage_ms),
           "captures": stage.captures, "replays": stage.replays, "graphed": stage.enabled and device.type == "cuda"}
    return row, outputs


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x[0], y[0]) and ((x[1] is None and y[1] is None) or torch.equal(x[1], y[1])) for x, y in zip(a, b))


def run(args: argparse.Namespace) -> dict:
    from transformers.models.llava_onevision.modeling_llava_onevision import LlavaOnevisionMultiModalProjector

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    config = llava_onevision_config(args.preset)
    vision = config.vision_config
    torch.manual_seed(0)
    projector = LlavaOnevisionMultiModalProjector(config).to(device, dtype).eval()
    tokens = pooled_grid_tokens(vision.image_size, vision.patch_size)
    patches = (vision.image_size // vision.patch_size) ** 2
    generator = torch.Generator(device=device).manual_seed(0)
    selected = torch.randn(args.warm + args.frames + 8, patches, vision.hidden_size, device=device, dtype=dtype,
                           generator=generator)
    rows = {}
    for name, spec in specs(tokens).items():
        for chunk in (int(c) for c in args.chunks.split(",")):
            eager, eager_out = measure(projector, spec, tokens, selected, chunk, False, args, device)
            row = {"compression": name, "frames_per_call": chunk, "eager": eager}
            if device.type == "cuda":
                graphed, graph_out = measure(projector, spec, tokens, selected, chunk, True, args, device)
                row.update(graph=graphed, equal=same(eager_out, graph_out),
                           speedup=eager["wall_ms_per_frame"] / graphed["wall_ms_per_frame"])
            rows[f"{name} c={chunk}"] = row
    report = {"preset": args.preset, "dtype": args.dtype, "device": str(device), "frames": args.frames,
              "warm": args.warm, "repeats": args.repeats, "torch": torch.__version__, "python": platform.python_version(),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "token_stage_speed.json").write_text(json.dumps(report, indent=2))
    (out / "token_stage_speed.md").write_text(markdown(report))
    return report


def markdown(report: dict) -> str:
    lines = [f"# Token stage eager vs CUDA graph ({report['preset']}, {report['dtype']}, {report['gpu'] or report['device']})",
             "", f"{report['frames']} timed frames after {report['warm']} warm-up frames; medians of {report['repeats']}. "
             "wall = perf_counter around the calls (one sync at the end), stage = the host's projector + pruner "
             "CUDA-event ms.", "",
             "| compression | frames/call | eager wall ms/frame | graph wall ms/frame | x | eager stage ms | "
             "graph stage ms | captures/replays | bitwise equal |", "|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"].values():
        eager, graph = row["eager"], row.get("graph")
        g = (lambda key: f"{graph[key]:.3f}") if graph else (lambda key: "–")
        counts = f"{graph['captures']}/{graph['replays']}" if graph else "–"
        speedup = f"{row['speedup']:.2f}" if graph else "–"
        lines.append(f"| {row['compression']} | {row['frames_per_call']} | {eager['wall_ms_per_frame']:.3f} | "
                     f"{g('wall_ms_per_frame')} | {speedup} | {eager['stage_ms_per_frame']:.3f} | "
                     f"{g('stage_ms_per_frame')} | {counts} | "
                     f"{row.get('equal', '–')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(run(parse_args())))
