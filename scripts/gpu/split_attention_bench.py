"""The context attention of a ReKV step, alone: how many key chunks, and which rows they cover.

    python scripts/gpu/split_attention_bench.py --out results/split_attention     # H200, ~1 min
    python scripts/gpu/split_attention_bench.py --out /tmp/s --device cpu --dtype float32 \
        --capacity 300 --used 40,300 --tokens 1,5 --splits 1,3 --repeats 2 --replays 2   # CPU smoke

Why: the pre-fill step's attention over the window was 1.6 ms per 64-token step at a 1-3k-token fill
and 2.3 ms over a full 15 000-token window (docs/rekv/graphed-step.md), against ~0.2 ms of K/V reads.
Two suspects, measured here one layer's call at a time (`--repeats` calls, one per layer, in ONE CUDA
graph, as in the graphed step):
- which rows the chunks cover: `capacity` cuts the ring's capacity into P chunks and gives each chunk
  its valid length (the scheme before 2026-11-30: at a 2k fill only 2-3 chunks hold keys); `valid`
  cuts the valid rows into P equal shares on the device (`SplitAttention.plan_chunks` now);
- how many chunks: FlashAttention-2 runs one thread block per (128 folded query rows, KV head, chunk);
  the sweep shows where the block count crosses a wave of the GPU (`context_splits` picks P from it).
Rows time the flash call alone (`context`) and with the log-sum-exp merge of the chunks and the causal
self part (`context+merge`, uncompiled glue). Writes split_attention.json and split_attention.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere in the repo

from frameworks.common.split_attention import ChunkPlan, SplitAttention, context_splits, fold_queries  # noqa: E402
from speed_benchmark.timing import graph_replay_us  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--q-heads", type=int, default=28)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--capacity", type=int, default=15004, help="window rows (sink + n_local)")
    p.add_argument("--used", default="1024,2800,15004", help="valid rows of the window, comma-separated")
    p.add_argument("--tokens", default="1,64,196,512", help="new tokens (queries) per step")
    p.add_argument("--splits", default="1,2,4,6,8,12,16,17,22,24,32,33,48,64,66,67,96,132")
    p.add_argument("--repeats", type=int, default=28, help="calls per graph (one per decoder layer)")
    p.add_argument("--replays", type=int, default=20)
    return p.parse_args(argv)


def capacity_plan(attention: SplitAttention, total: int, splits: int, used: torch.Tensor, device):
    """The scheme before 2026-11-30, for comparison: the capacity cut into P chunks, each chunk's valid
    length (`seqused_k`) computed from `used`; returns (plan, seqused) for `flash_capacity_context`."""
    size = -(-total // splits)
    bounds = attention._edges(total, size, device)
    plan = ChunkPlan(total, size, bounds.numel() - 1, bounds, True)
    offsets = bounds[:-1]
    seqused = (used.reshape(1).to(torch.int32) - offsets).clamp(min=0).minimum(bounds[1:] - offsets)
    return plan, seqused


def flash_capacity_context(attention, q, keys, values, scale, plan, seqused):
    """`SplitAttention.context`'s flash call with per-chunk `seqused_k` (the old scheme)."""
    rows = q.shape[1] // keys.shape[1] * q.shape[0]
    folded = fold_queries(q, keys.shape[1], plan.count)
    return torch.ops.aten._flash_attention_forward(
        folded, keys[:plan.total], values[:plan.total], attention._edges(plan.count * rows, rows, q.device),
        plan.bounds, rows, plan.size, 0.0, False, False, scale=scale, seqused_k=seqused)


def main(argv=None) -> int:
    a = parse_args(argv)
    device, dtype = torch.device(a.device), getattr(torch, a.dtype)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    kernel = "flash" if device.type == "cuda" else "reference"
    attention = SplitAttention(kernel)
    gen = torch.Generator(device=device).manual_seed(0)
    keys, values = (torch.randn(a.capacity, a.kv_heads, a.head_dim, device=device, generator=gen, dtype=dtype)
                    for _ in range(2))
    scale = a.head_dim ** -0.5
    sweep = [int(s) for s in a.splits.split(",")]
    rows = []
    for tokens in (int(t) for t in a.tokens.split(",")):
        q = torch.randn(tokens, a.q_heads, a.head_dim, device=device, generator=gen, dtype=dtype)
        new_k, new_v = (torch.randn(tokens, a.kv_heads, a.head_dim, device=device, generator=gen, dtype=dtype)
                        for _ in range(2))
        picked = context_splits(tokens, a.q_heads, a.kv_heads, a.capacity, device)
        for used_rows in (int(u) for u in a.used.split(",")):
            used = torch.tensor([used_rows], device=device, dtype=torch.int32)

            def record(scheme, splits, part, us):
                rows.append({"tokens": tokens, "used": used_rows, "scheme": scheme, "splits": splits,
                             "part": part, "us": round(us, 2), "picked": splits == picked})
                print(f"S={tokens:4d} used={used_rows:6d} {scheme:8s} P={splits:3d} {part:14s} {us:9.2f} µs",
                      flush=True)

            for splits in sorted(set(sweep + [picked])):
                plan = attention.plan_chunks(a.capacity, splits, used, device)
                us, _ = graph_replay_us(lambda: attention.context(q, keys, values, scale, plan), a.repeats,
                                        a.replays, device)
                record("valid", splits, "context", us)
                if kernel == "flash":
                    old, seqused = capacity_plan(attention, a.capacity, splits, used, device)
                    us, _ = graph_replay_us(lambda: flash_capacity_context(attention, q, keys, values, scale, old,
                                                                           seqused), a.repeats, a.replays, device)
                    record("capacity", splits, "context", us)
            plan = attention.plan_chunks(a.capacity, picked, used, device)

            def step():
                own = attention(q, new_k, new_v, scale, causal=True)
                return attention.merge_chunks(attention.context(q, keys, values, scale, plan), [own], dtype)
            us, _ = graph_replay_us(step, a.repeats, a.replays, device)
            record("valid", picked, "context+merge", us)
    (out / "split_attention.json").write_text(json.dumps({"device": _device_name(device), "args": vars(a),
                                                          "rows": rows}, indent=1))
    (out / "split_attention.md").write_text(_markdown(rows, _device_name(device)))
    return 0


def _device_name(device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _markdown(rows, device_name) -> str:
    """One table per (tokens, used): µs per layer by P, both schemes side by side."""
    lines = [f"# Context attention per layer ({device_name})", "",
             "µs per call (one decoder layer), median of graph replays; `*` = `context_splits`' pick.", ""]
    keys = sorted({(r["tokens"], r["used"]) for r in rows})
    for tokens, used in keys:
        sub = [r for r in rows if (r["tokens"], r["used"]) == (tokens, used)]
        lines += [f"## {tokens} new tokens, {used} valid rows", "", "| P | valid (µs) | capacity (µs) |", "|---|---|---|"]
        for splits in sorted({r["splits"] for r in sub if r["part"] == "context"}):
            cell = {r["scheme"]: r["us"] for r in sub if r["splits"] == splits and r["part"] == "context"}
            star = "*" if any(r["picked"] for r in sub if r["splits"] == splits) else ""
            lines.append(f"| {splits}{star} | {cell.get('valid', '')} | {cell.get('capacity', '')} |")
        merged = [r for r in sub if r["part"] == "context+merge"]
        lines += ["", *(f"context+merge at the pick (P={r['splits']}): {r['us']} µs" for r in merged), ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
