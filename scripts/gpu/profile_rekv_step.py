"""Profile one ReKV streaming pre-fill step at the released size (LLaVA-OV-7B decoder, random weights):
time per step for each `llm_step` mode and token count, its floor, and where the GPU time goes (kernel
classes: GEMM, attention, everything else, with kernel counts), from torch.profiler over graph replays.

    python3 scripts/gpu/profile_rekv_step.py --out DIR [--tokens 64 196 512] [--context 1024 15000]

Writes DIR/step_profile.json and DIR/step_profile.md. CUDA only (a CPU run says so and exits 2).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from frameworks.common.timing import EventTimer  # noqa: E402
from speed_benchmark.profile import device_kernels  # noqa: E402
from speed_benchmark.roofline import measure_peaks  # noqa: E402


def _classify(name: str) -> str:
    low = name.lower()
    if "flash" in low or "fmha" in low or "attention" in low:
        return "attention"
    if any(tag in low for tag in ("gemm", "nvjet", "cutlass", "sm90_xmma", "cublas", "splitk")):
        return "gemm"
    if "memcpy" in low or "memset" in low:
        return "copy"
    return "other (norms, RoPE, adds, casts, index copies)"


def _host(mode: str, tokens: int, n_local: int):
    from frameworks.registry import build_host

    settings = dict(preset="7b", device="cuda", dtype="bfloat16", n_local=n_local, llm_step=mode, retrieve_size=64)
    return build_host("rekv", settings, None)


@torch.no_grad()
def _measure(host, tokens: int, context: int, repeats: int):
    """Fill the window to `context` tokens, then time `repeats` steps of `tokens` tokens (CUDA events).
    -> (the chunk, ms per step, window length when timing started)."""
    hidden = host.stack.hidden_size
    gen = torch.Generator(device="cuda").manual_seed(0)
    chunk = torch.randn(tokens, hidden, device="cuda", generator=gen, dtype=torch.bfloat16) * 0.02
    host.reset()
    while host.window.length + tokens <= context:
        _step(host, chunk)
    for _ in range(3):
        _step(host, chunk)
    start = host.window.length
    timer = EventTimer(host.device)
    for _ in range(repeats):
        timer.call(lambda: _step(host, chunk))
    return chunk, timer.finish(), start


def _step(host, chunk):
    """One streaming pre-fill step as `ReKVHost.prefill_tokens` runs it (`host.steps`, any llm_step),
    without the block-store write."""
    host.steps(chunk)


@torch.no_grad()
def _profile(host, chunk, steps: int = 5):
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            _step(host, chunk)
        torch.cuda.synchronize()
    classes = defaultdict(lambda: [0, 0.0])
    for row in device_kernels(prof.key_averages()):
        bucket = classes[_classify(row["kernel"])]
        bucket[0] += row["calls"]
        bucket[1] += row["us"] / 1000.0
    return {name: {"kernels_per_step": count / steps, "ms_per_step": ms / steps} for name, (count, ms) in classes.items()}


def _floor(host, tokens: int, context: int, peak_tflops: float, bandwidth_gbs: float) -> float:
    layers, hidden = host.stack.num_layers, host.stack.hidden_size
    params = sum(p.numel() for layer in host.stack.layers for p in layer.parameters())
    flops = 2 * params * tokens + 4 * layers * host.stack.q_heads * host.stack.head_dim * tokens * (context + tokens)
    weight_bytes = params * 2
    kv_bytes = 2 * layers * host.stack.kv_heads * host.stack.head_dim * context * 2
    return max(flops / (peak_tflops * 1e12), (weight_bytes + kv_bytes) / (bandwidth_gbs * 1e9)) * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--tokens", type=int, nargs="+", default=[64, 196, 512])
    parser.add_argument("--context", type=int, nargs="+", default=[1024, 15000])
    parser.add_argument("--modes", nargs="+", default=["eager", "graph"])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("profile_rekv_step: needs a CUDA device", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    peaks = measure_peaks(torch.device("cuda"), torch.bfloat16)  # the harness's own GEMM / copy ceilings
    tflops, bandwidth = peaks.flops_per_s / 1e12, peaks.bytes_per_s / 1e9
    rows = []
    for mode in args.modes:
        host = _host(mode, max(args.tokens), 15000)
        for context in args.context:
            for tokens in args.tokens:
                chunk, times, start = _measure(host, tokens, context, args.repeats)
                median = statistics.median(times)
                floor = _floor(host, tokens, (start + host.window.length) // 2, tflops, bandwidth)
                profile = _profile(host, chunk) if mode == "graph" or tokens == args.tokens[0] else {}
                context_range = f"{start}-{host.window.length}"
                rows.append(dict(mode=mode, tokens=tokens, context=context_range, ms=median, floor_ms=floor,
                                 x_floor=median / floor, profile=profile))
                print(f"{mode:6s} tokens={tokens:4d} context={context_range}: {median:7.2f} ms "
                      f"(floor {floor:.2f}, x{median / floor:.2f}) {json.dumps(profile)}", flush=True)
        host.close()
        del host
        torch.cuda.empty_cache()
    (out / "step_profile.json").write_text(json.dumps(dict(peak_tflops=tflops, bandwidth_gbs=bandwidth, rows=rows), indent=1))
    lines = [f"Peaks measured in this run: GEMM {tflops:.0f} TFLOP/s, copy {bandwidth:.0f} GB/s.", "",
             "| llm_step | new tokens | context tokens (during timing) | ms/step | floor ms | x floor | GEMM ms (kernels) | attention ms (kernels) | other ms (kernels) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r["profile"]
        cell = lambda k: next((f"{v['ms_per_step']:.2f} ({v['kernels_per_step']:.0f})" for n, v in p.items() if n.startswith(k)), "–")  # noqa: E731
        lines.append(f"| {r['mode']} | {r['tokens']} | {r['context']} | {r['ms']:.2f} | {r['floor_ms']:.2f} | {r['x_floor']:.2f} | "
                     f"{cell('gemm')} | {cell('attention')} | {cell('other')} |")
    (out / "step_profile.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
