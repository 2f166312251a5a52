"""`make demo` = `python -m speed_benchmark.demo`: the harness on its embedded default, then a per-frame
trace of STC-Cacher and STC-Pruner.

- GPU present: preset llava_ov_7b (random weights at the released sizes), ViT one-stream + pre-fill
  cases, 10 repeats (a few minutes including the 7B build).
- No GPU: the tiny CPU preset, every case, in seconds (a functional check, not a speed claim).

The trace runs one stream through an STC-patched copy of the tower, one frame per call, and prints
for each frame whether it was a reference or a selective frame, how many tokens every layer
recomputed, the tower time, and how many tokens STC-Pruner kept of the pooled frame.
Options: `--preset NAME`, `--out DIR`, and any `key=value` override of configs/speed/.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from speed_benchmark.compose import compose
from speed_benchmark.config import SpeedConfig
from speed_benchmark.timing import synchronize


def default_setup(cuda: bool) -> tuple[str, list[str]]:
    """The embedded default: (preset, overrides)."""
    if cuda:
        return "llava_ov_7b", ["multistream.enabled=false", "e2e.enabled=false", "repeats=10",
                               "vit.intervals=[2,4]", "prefill.frames_per_chunk=[1,8,16]"]
    return "tiny", []


def _pool2x(features: torch.Tensor) -> torch.Tensor:
    """LLaVA-OV style pooling of [B, T, D] square-grid tokens to ceil(side/2)^2 (bilinear)."""
    b, t, d = features.shape
    side = math.isqrt(t)
    grid = features[:, -side * side:].transpose(1, 2).reshape(b, d, side, side)
    pooled = torch.nn.functional.interpolate(grid.float(), size=(math.ceil(side / 2),) * 2, mode="bilinear")
    return pooled.flatten(2).transpose(1, 2).to(features.dtype)


def trace(cfg: SpeedConfig) -> list[dict]:
    """Per-frame cacher/pruner trace on the preset's tower (one frame per call)."""
    from stc import CacherConfig, PrunerConfig, STCPruner, attach_cacher

    from speed_benchmark.models import build_vision_tower, resolve_device_dtype, resolve_spec, synthetic_frames

    spec = resolve_spec(cfg.preset, cfg.model.path)
    device, dtype = resolve_device_dtype(cfg)
    tower = build_vision_tower(spec, cfg, device, dtype)
    handle = attach_cacher(tower, CacherConfig(update_ratio=cfg.stc.update_ratio, cache_interval=cfg.stc.cache_interval))
    frames = synthetic_frames(spec, cfg.frames, device, dtype, cfg.seed)
    pooled_tokens = math.ceil(math.isqrt(spec.vit_tokens) / 2) ** 2
    pruner = STCPruner(PrunerConfig(tokens_per_frame=min(cfg.stc.tokens_per_frame, pooled_tokens),
                                    strategy=cfg.stc.pruner_strategy))
    rows = []
    with torch.no_grad():
        tower(pixel_values=frames[:1])  # warm-up, then a fresh stream
        handle.stream.reset()
        for f in range(cfg.frames):
            synchronize(device)
            t0 = time.perf_counter()
            out = tower(pixel_values=frames[f:f + 1]).last_hidden_state
            synchronize(device)
            vit_ms = (time.perf_counter() - t0) * 1e3
            kept, _ = pruner.compress(_pool2x(out))
            s = handle.stream.stats
            rows.append({"frame": f, "kind": "reference" if s.last_frame_reference else "selective",
                         "recomputed": s.tokens_per_frame if s.last_frame_reference else s.tokens_recomputed,
                         "tokens": s.tokens_per_frame, "vit_ms": vit_ms, "kept": kept.shape[1], "pooled": pooled_tokens})
    handle.detach()
    return rows


def print_trace(rows: list[dict], cfg: SpeedConfig) -> None:
    print(f"\nSTC per-frame trace (N={cfg.stc.cache_interval}, r={cfg.stc.update_ratio}, k={cfg.stc.tokens_per_frame}; "
          "eager, one frame per call)\n")
    print("| frame | kind | tokens recomputed per layer | ViT ms | pruner kept / pooled |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['frame']} | {r['kind']} | {r['recomputed']}/{r['tokens']} | {r['vit_ms']:.2f} | {r['kept']}/{r['pooled']} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="override the embedded default preset")
    parser.add_argument("--out", default=None, help="output folder (default results/speed/demo-<preset>)")
    parser.add_argument("overrides", nargs="*", help="key=value settings (configs/speed/speed.yaml keys)")
    args = parser.parse_args(argv)
    preset, overrides = default_setup(torch.cuda.is_available())
    preset = args.preset or preset
    cfg = compose(preset, overrides + args.overrides, out_dir=args.out or f"results/speed/demo-{preset}")
    from speed_benchmark.config import apply_process_settings
    from speed_benchmark.runner import run

    apply_process_settings(cfg)
    result, paths = run(cfg, command="python -m speed_benchmark.demo " + " ".join(argv or []))
    print(paths["table"].read_text())
    print_trace(trace(cfg), cfg)
    print("\nwrote " + ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
