"""One SigLIP-so400m encoder layer, kernel by kernel: the dense layer (HF's, and ours compiled) against
STC-Cacher's fused reference and selective layers, at one stream (B=1) and at 8 streams (B=8).

    python scripts/gpu/vit_layer_kernels.py --out results/vit_layer_kernels            # H200, ~3-5 min
    python scripts/gpu/vit_layer_kernels.py --out /tmp/k --device cpu --dtype float32 --tokens 49 \
        --width 64 --heads 4 --mlp 128 --layers 2 --modes eager                          # CPU smoke

Why: the one-stream ViT target (issue 14 §3) and the 8-stream one are missed, and the explanation must
come from a profile, not from a guess. Each function runs `--layers` times back to back (one tower's
worth) inside ONE CUDA graph, so launch gaps are the graph's, like the graphed cacher's; per-layer
microseconds are the replay time / layers. Rows:
- `hf dense`: transformers' SiglipEncoderLayer (sdpa), what the graphed baseline tower runs;
- `dense` / `reference` / `selective`: stc/cacher/fused.py's functions (`reference` also returns the
  references a refresh stores, and the timed step writes them into a slot pool, as the cacher does);
  per compile mode: `eager` (uncompiled), `default` (what `fused=True` runs), `max-autotune`
  (Inductor's Triton GEMM templates with fused epilogues, autotuned per shape), `nopad` (default without
  Inductor's padded GEMM output strides; measured: dense B=8 -3 %, others unchanged, not what the cacher runs);
- `gemm ...`, `sdpa ...`, `topk`, `topk via sort` (measured slower: 15.8 vs 8.3 µs), `similarity`: the selective layer's
  parts alone, at B=1.
Also a torch.profiler kernel table (name, calls per layer, µs per layer) of one replay of the main
rows. Writes kernels.json, kernels.md and profile_<row>.txt to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere in the repo

from speed_benchmark.profile import device_kernels  # noqa: E402
from speed_benchmark.timing import graph_replay_us  # noqa: E402
from stc.cacher.fused import FUNCTIONS, _reference_rows, compile_fresh, stacked_weights  # noqa: E402
from stc.cacher.layer import write_references  # noqa: E402
from stc.cacher.selection import prepare_reference, select_dynamic_tokens, token_similarity  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--tokens", type=int, default=729)
    p.add_argument("--width", type=int, default=1152)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--mlp", type=int, default=4304)
    p.add_argument("--layers", type=int, default=26)
    p.add_argument("--ratio", type=float, default=0.25)
    p.add_argument("--batches", default="1,8")
    p.add_argument("--modes", default="eager,default,max-autotune")
    p.add_argument("--replays", type=int, default=20)
    p.add_argument("--mixed-refs", type=int, default=2,
                   help="reference rows of the `mixed` row (a staggered multi-stream call: R of B streams refresh)")
    p.add_argument("--only", default="",
                   help="run only these row:B pairs, e.g. reference:2,selective:6,mixed:8 (parts: 'parts:1')")
    return p.parse_args(argv)


def weights(a, device, dtype, generator):
    def w(*shape, scale=0.02):
        return (torch.randn(*shape, generator=generator) * scale).to(device, dtype)
    d, m = a.width, a.mlp
    ones = torch.ones(d, device=device, dtype=dtype)
    return (ones, w(d), w(d, d), w(d), w(d, d), w(d), w(d, d), w(d), w(d, d), w(d), ones.clone(), w(d),
            w(m, d), w(m), w(d, m), w(d), None, None)


MODE_OPTIONS = {  # compile mode -> torch.compile options (`eager`: uncompiled)
    "default": {},
    "max-autotune": {"mode": "max-autotune-no-cudagraphs"},
    # Inductor without padded GEMM output strides (the B=8 add+GELU ran at ~1.8 TB/s)
    "nopad": {"options": {"comprehensive_padding": False}},
}


def compiled(name, mode):
    function = FUNCTIONS[name] if name in FUNCTIONS else name
    if mode == "eager":
        return function
    return compile_fresh(function, mode.replace("-", "_"), **MODE_OPTIONS[mode])


def dense_layer(hidden, *args):
    """Our dense layer without the stores: `_reference_rows`' output only."""
    return _reference_rows(hidden, *args)[0]


def kernel_table(graph, layers: int, path: Path) -> list[dict]:
    """One profiled replay: per kernel name, calls and µs per layer (longest first)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        graph.replay()
        torch.cuda.synchronize()
    table = [{**row, "calls": row["calls"] / layers, "us": row["us"] / layers}
             for row in device_kernels(prof.key_averages())]
    lines = [f"{'us/layer':>9} {'calls/layer':>11}  kernel"]
    lines += [f"{r['us']:9.2f} {r['calls']:11.2f}  {r['kernel'][:150]}" for r in table]
    lines.append(f"{sum(r['us'] for r in table):9.2f} {sum(r['calls'] for r in table):11.2f}  TOTAL")
    path.write_text("\n".join(lines) + "\n")
    return table


def mixed_call(mixed, hidden, pool, refs: int, selective_w, reference_w, k: int, consts):
    """One staggered multi-stream call as the cacher runs it (fused.py `FusedSelectiveLayer.run`): B streams,
    `refs` of them refresh (rows spread over the batch), the others read their stored references from
    the slot pool at non-consecutive slots (gathered inside the compiled function), and the refreshed
    references are written back (`write_references`)."""
    batch, device = hidden.shape[0], hidden.device
    ref = sorted({i * batch // refs for i in range(refs)})
    sel = [i for i in range(batch) if i not in ref]
    order = ref + sel
    inverse = [order.index(row) for row in range(batch)]
    tensor = lambda values: torch.tensor(values, device=device)  # noqa: E731
    ref_rows, sel_rows, inverse, call_pos = tensor(ref), tensor(sel), tensor(inverse), tensor([0] * len(sel))

    index = types.SimpleNamespace(store_slice=None, store_slot_list=tuple(ref), store_slots=ref_rows)

    def step():
        out, stores = mixed(hidden, pool, sel_rows, ref_rows, sel_rows, None, call_pos, None, inverse,
                            selective_w, reference_w, k, *consts, 0)
        write_references(pool, index, stores)
        return out
    return step


def main(argv=None) -> int:
    a = parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    device, dtype = torch.device(a.device), getattr(torch, a.dtype)
    gen = torch.Generator().manual_seed(0)
    raw = weights(a, device, dtype, gen)
    selective_w, reference_w = stacked_weights(raw)
    k = max(1, round(a.ratio * a.tokens))
    consts = (a.heads, (a.width // a.heads) ** -0.5, 1e-6, 1e-6, "gelu_pytorch_tanh", "cosine", True)
    results, profiles = [], {}

    def record(name, batch, mode, us, graph=None, profile=False):
        results.append({"row": name, "B": batch, "mode": mode, "us_per_layer": round(us, 2),
                        "us_per_frame_layer": round(us / batch, 2)})
        print(f"{name:<28} B={batch:<2} {mode:<13} {us:9.2f} us/layer {us / batch:9.2f} us/frame-layer", flush=True)
        if profile and graph is not None:
            slug = f"{name}_B{batch}_{mode}".replace(" ", "_")
            profiles[slug] = kernel_table(graph, a.layers, out / f"profile_{slug}.txt")
        write(out, a, device, results, profiles)

    only = {tuple(x.split(":")) for x in a.only.split(",") if x}
    wanted = lambda name, batch: not only or (name, str(batch)) in only  # noqa: E731
    batches = [int(b) for b in a.batches.split(",")]
    inputs = {b: torch.randn(b, a.tokens, a.width, generator=gen).to(device, dtype) for b in batches}
    if device.type == "cuda":
        for batch in (b for b in batches if wanted("hf dense", b)):
            hidden = inputs[batch]
            try:
                from transformers import SiglipVisionConfig
                from transformers.models.siglip.modeling_siglip import SiglipEncoderLayer
                config = SiglipVisionConfig(hidden_size=a.width, intermediate_size=a.mlp, num_attention_heads=a.heads,
                                            attn_implementation="sdpa")
                config._attn_implementation = "sdpa"
                hf = SiglipEncoderLayer(config).to(device, dtype).eval()

                def hf_step():
                    with torch.no_grad():
                        return hf(hidden, attention_mask=None)
                us, graph = graph_replay_us(hf_step, a.layers, a.replays, device)
                record("hf dense", batch, "eager", us, graph, profile=True)
            except Exception as error:  # noqa: BLE001 - a diagnostic: report and go on
                print(f"hf dense B={batch}: {type(error).__name__}: {error}")
    for mode in a.modes.split(","):  # slowest-compiling mode last: earlier rows are written already
        for batch in batches:
            hidden = inputs[batch]
            pool = torch.zeros(3, batch, a.tokens, a.width, device=device, dtype=dtype)
            started = time.perf_counter()
            try:
                with torch.no_grad():
                    if wanted("dense", batch):
                        dense = compiled(dense_layer, mode)
                        us, graph = graph_replay_us(lambda: dense(hidden, *reference_w, *consts), a.layers, a.replays,
                                                    device)
                        record("dense", batch, mode, us, graph, profile=mode != "eager")
                    if wanted("reference", batch):
                        reference = compiled("reference", mode)

                        def ref_step():
                            _, stores = reference(hidden, None, *reference_w, k, *consts, 0)
                            pool.copy_(stores)
                        us, graph = graph_replay_us(ref_step, a.layers, a.replays, device)
                        record("reference", batch, mode, us, graph, profile=mode != "eager")
                    pool[0].copy_(prepare_reference(hidden * 0.9, "cosine"))
                    pool[1].copy_(hidden * 0.5)
                    pool[2].copy_(hidden * 0.1)
                    if wanted("selective", batch):
                        selective = compiled("selective", mode)
                        us, graph = graph_replay_us(
                            lambda: selective(hidden, pool, None, *selective_w, k, *consts, 0),
                            a.layers, a.replays, device)
                        record("selective", batch, mode, us, graph, profile=mode != "eager")
                    if wanted("mixed", batch) and batch > a.mixed_refs:
                        step = mixed_call(compiled("mixed", mode), hidden, pool, a.mixed_refs, selective_w,
                                          reference_w, k, consts)
                        us, graph = graph_replay_us(step, a.layers, a.replays, device)
                        record(f"mixed ({a.mixed_refs} ref)", batch, mode, us, graph, profile=mode != "eager")
            except Exception as error:  # noqa: BLE001
                print(f"mode {mode} B={batch}: {type(error).__name__}: {str(error)[:300]}")
            print(f"  (mode {mode} B={batch}: {time.perf_counter() - started:.0f} s incl. compile)", flush=True)

    if not wanted("parts", 1):
        return 0
    # the selective layer's parts alone, B=1
    hidden = torch.randn(1, a.tokens, a.width, generator=gen).to(device, dtype)
    rows = hidden[:, :k]
    ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, _, _, fc1_w, fc1_b, fc2_w, fc2_b, _, _ = raw
    parts = {
        "gemm K (T rows)": lambda: F.linear(hidden, k_w, k_b),
        "gemm QKV (T rows)": lambda: F.linear(hidden, reference_w[2], reference_w[3]),
        "gemm QV (k rows)": lambda: F.linear(rows, selective_w[4], selective_w[5]),
        "gemm O (k rows)": lambda: F.linear(rows, o_w, o_b),
        "gemm fc1 (k rows)": lambda: F.linear(rows, fc1_w, fc1_b),
        "gemm fc2 (k rows)": lambda: F.linear(torch.zeros(1, k, a.mlp, device=device, dtype=dtype), fc2_w, fc2_b),
        "gemm O (T rows)": lambda: F.linear(hidden, o_w, o_b),
        "gemm fc1 (T rows)": lambda: F.linear(hidden, fc1_w, fc1_b),
        "gemm fc2 (T rows)": lambda: F.linear(torch.zeros(1, a.tokens, a.mlp, device=device, dtype=dtype), fc2_w, fc2_b),
    }
    heads = lambda n: torch.randn(1, a.heads, n, a.width // a.heads, generator=gen).to(device, dtype)  # noqa: E731
    qk, qt, kv = heads(k), heads(a.tokens), heads(a.tokens)
    parts["sdpa k x T"] = lambda: F.scaled_dot_product_attention(qk, kv, kv)
    parts["sdpa T x T"] = lambda: F.scaled_dot_product_attention(qt, kv, kv)
    reference = prepare_reference(hidden * 0.9, "cosine")
    scores = token_similarity(hidden, reference, "cosine")
    parts["similarity"] = lambda: token_similarity(hidden, reference, "cosine")
    parts["topk"] = lambda: select_dynamic_tokens(scores, k)
    # tried as a replacement for the 8 µs radix-select top-k: one sort of the T scores, first k (H200: 15.8 µs)
    parts["topk via sort"] = lambda: torch.sort(scores, dim=-1).indices[..., :k]
    parts["layer_norm (T rows)"] = lambda: F.layer_norm(hidden, (a.width,), ln1_w, ln1_b, 1e-6)
    with torch.no_grad():
        for name, step in parts.items():
            us, _ = graph_replay_us(step, a.layers, a.replays, device)
            record(name, 1, "eager", us)

    return 0


def write(out: Path, a, device, results, profiles) -> None:
    """kernels.json and kernels.md so far (rewritten after every row: a run cut short keeps its rows)."""
    (out / "kernels.json").write_text(json.dumps({"args": vars(a), "device": torch.cuda.get_device_name()
                                                  if device.type == "cuda" else "cpu",
                                                  "torch": torch.__version__, "rows": results,
                                                  "profiles": profiles}, indent=1))
    lines = ["| row | B | mode | µs/layer | µs per frame-layer |", "|---|---|---|---|---|"]
    lines += [f"| {r['row']} | {r['B']} | {r['mode']} | {r['us_per_layer']} | {r['us_per_frame_layer']} |" for r in results]
    (out / "kernels.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
