"""ReKV answer latency after a long stream, per block-loading mode (issue 14 §2, docs/rekv/answer-path.md).

    python scripts/gpu/rekv_answer_latency.py --out results/speed/rekv_answer            # H200, < 4 min
    python scripts/gpu/rekv_answer_latency.py --out /tmp/ra --preset tiny --device cpu --dtype float32 \
        --frames 40 --n-local 200 --retrieve 8 --repeats 2                                # CPU check

Random-weight LLaVA-OV (latency does not depend on weight values) through the ReKV host; the memory holds
`--frames` frame blocks (1800 = one hour at 0.5 fps) via `host.fill_history`. Block sizes: 64 tokens
(STC-Pruner k=64) and 196 (no compression). Modes, each timed on the same host (first token = one
`answer` with max_new_tokens=1, CUDA events; stage splits from `host.timings`):

  legacy      the path before issue 14: one `store.gather` per layer (a host sync per layer), compute stream
  sync        all layers planned after ONE sync, loads on the compute stream, no LRU
  side        the same loads on a side stream, one event per layer (no LRU)
  side+lru    side stream + the 128-block device LRU, cold (LRU cleared before every answer)
  ...:copies  the same with one host->device copy per run of blocks (block_loading="copies"); the other
              modes use block_loading="gather" (all layers in one pass, pinned pages read over UVA)
  side+lru:repeat   the same question again (every block a hit: device copies only)
  side+lru:next     a different question (its overlap with the previous selection is what random
                    representative keys give; real questions about one video overlap more)
  side+overlap, side+lru+overlap    `load_during_prefill`: blocks loaded inside the answer pre-fill,
                    copies issued 2 layers ahead (LRU cold); compare first_token_ms, not the stages

Also measured: the pinned->device bandwidth of ONE copy of the same number of bytes (the floor of the
loading step) and the bytes each answer moves.

Loading microbenchmark (`--micro`, on by default; a bare BlockStore, no model): the copy step alone for
random top-k of `--frames` blocks per layer, CUDA events, median of 5:
  loop        one Python `copy_` per run (the pre-issue-14 issue pattern, without its syncs)
  foreach     `BlockStore.copy_blocks` (all runs of a layer in one `torch._foreach_copy_`), all layers
  zero_copy   ONE `index_select` kernel for all layers reading pinned memory directly over UVA (every
              block in one pinned allocation, viewed as a CUDA tensor): what a gather kernel could
              reach; experimental, first block size only, not used by the host (answer-path.md)
  one_copy    one contiguous copy of the same bytes (the bandwidth floor)
Writes <out>/rekv_answer_latency.json and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from frameworks.common.llava_loading import build_random_llava_onevision  # noqa: E402
from frameworks.common.model_sizes import llava_onevision_config  # noqa: E402
from frameworks.common.timing import EventTimer  # noqa: E402
from frameworks.protocol import Query  # noqa: E402
from frameworks.rekv import ReKVConfig, ReKVHost  # noqa: E402

QUESTIONS = [
    "What is the person in the video doing after picking up the red cup?",
    "Which room is shown at the beginning of the video?",
]
PROMPT = "Question: {q}\nOptions:\n(A) one\n(B) two\n(C) three\n(D) four\nOnly give the best option."


def query(index: int) -> Query:
    text = QUESTIONS[index % len(QUESTIONS)]
    return Query(prompt=PROMPT.format(q=text), retrieval_text=text, answer_prefix="Best option: (", max_new_tokens=1)


class LegacyLoading:
    """The loading path before issue 14, for comparison: per layer, `store.gather` (its own `.tolist()`
    sync) on the compute stream."""

    def __init__(self, store):
        self.store = store

    def start(self, selection):
        return self

    def layer(self, layer):
        return self.store.gather(layer, torch.tensor(self.selection[layer], device=self.store.device))


def timed(device, fn) -> float:
    """ms of one call of `fn` (the project's EventTimer: CUDA events on GPU, perf_counter on CPU)."""
    timer = EventTimer(device)
    timer.call(fn)
    return timer.finish()[0]


def copy_bandwidth(nbytes: int, device) -> float:
    """GB/s of one pinned host->device copy of `nbytes` (median of 5)."""
    if device.type != "cuda":
        return float("nan")
    host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    target = torch.empty(nbytes, dtype=torch.uint8, device=device)
    samples = [timed(device, lambda: target.copy_(host, non_blocking=True)) for _ in range(6)][1:]
    return nbytes / statistics.median(samples) / 1e6


def pinned_as_cuda(tensor: torch.Tensor, device) -> torch.Tensor:
    """A CUDA tensor aliasing pinned host memory (UVA: cudaHostAlloc memory is addressable from kernels),
    through __cuda_array_interface__ (int16 elements: the interface has no bfloat16)."""
    flat = tensor.view(torch.int16)

    class Interface:
        keep = tensor
        __cuda_array_interface__ = {"shape": tuple(flat.shape), "typestr": "<i2", "data": (flat.data_ptr(), False),
                                    "version": 3, "strides": None}
    with torch.cuda.device(device):
        return torch.as_tensor(Interface(), device=device)


def micro(args, block_tokens: int, device, zero_copy: bool) -> list[dict]:
    """The copy step alone on a bare store (see the module doc)."""
    from frameworks.common.model_sizes import qwen2_text_config
    from frameworks.rekv.block_store import BlockStore

    text = qwen2_text_config(args.preset)
    layers, heads = text.num_hidden_layers, text.num_key_value_heads
    dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    dtype = getattr(torch, args.dtype)
    generator = torch.Generator().manual_seed(0)
    selection = [sorted(torch.randperm(args.frames, generator=generator)[:args.retrieve].tolist()) for _ in range(layers)]
    store = BlockStore(layers, heads, dim, block_tokens, dtype, device, page_blocks=16)
    store.fill_random(args.frames)
    staged = torch.empty(layers, args.retrieve, 2, heads, block_tokens, dim, dtype=dtype, device=device)
    moved = staged.numel() * staged.element_size()
    want = torch.empty_like(staged)
    for layer, chosen in enumerate(selection):
        store.copy_blocks(layer, chosen, want[layer], range(len(chosen)))

    def loop():
        for layer, chosen in enumerate(selection):
            for page, slot, position, size in store._paired_runs([store.slots[i] for i in chosen],
                                                                  list(range(len(chosen)))):
                staged[layer, position:position + size].copy_(store.pages[page][layer, slot:slot + size],
                                                              non_blocking=True)

    def foreach():
        for layer, chosen in enumerate(selection):
            store.copy_blocks(layer, chosen, staged[layer], range(len(chosen)))

    modes, rows = {"loop": loop, "foreach": foreach}, []
    if device.type == "cuda":
        source = torch.empty(moved, dtype=torch.uint8, pin_memory=True)
        modes["one_copy"] = lambda: staged.view(torch.uint8).view(-1).copy_(source, non_blocking=True)
    if zero_copy and device.type == "cuda":
        try:  # every block in ONE pinned allocation [L, frames, 2, Hkv, B, D], filled from the paged store
            whole = torch.empty(layers, args.frames, *store.pages[0].shape[2:], dtype=dtype, pin_memory=True)
            for page_index, page in enumerate(store.pages):
                first = page_index * store.page_blocks
                count = min(store.page_blocks, args.frames - first)
                whole[:, first:first + count].copy_(page[:, :count])
            flat = pinned_as_cuda(whole, device).view(layers * args.frames, -1)
            index = torch.tensor([layer * args.frames + i for layer, chosen in enumerate(selection) for i in chosen],
                                 device=device)
            target = staged.view(torch.int16).view(layers * args.retrieve, -1)
            modes["zero_copy"] = lambda: torch.index_select(flat, 0, index, out=target)
        except Exception as error:  # noqa: BLE001 (recorded: the experiment may not work on this stack)
            rows.append({"block_tokens": block_tokens, "mode": "zero_copy", "error": f"{type(error).__name__}: {error}"})
    for name, fn in modes.items():
        staged.zero_()
        try:
            samples = [timed(device, fn) for _ in range(6)][1:]
        except Exception as error:  # noqa: BLE001 (zero_copy is an experiment: record why it failed)
            rows.append({"block_tokens": block_tokens, "mode": name, "error": f"{type(error).__name__}: {error}"})
            break
        row = {"block_tokens": block_tokens, "mode": name, "bytes": moved, "ms": statistics.median(samples)}
        row["gb_per_s"] = moved / row["ms"] / 1e6
        if name != "one_copy":
            row["equal_to_gather"] = bool(torch.equal(want, staged))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def measure(host: ReKVHost, mode: str, repeats: int, device) -> dict:
    """Median first-token latency and stage splits of `repeats` answers in `mode`."""
    host.loader.side = host._side if mode != "sync" else None
    host.loader.gather = not mode.endswith(":copies")
    cache = host._cache if mode.startswith("side+lru") else None
    host.loader.cache = cache
    config = host.config
    host.config = dataclasses.replace(config, load_during_prefill=mode.endswith("overlap"))
    legacy = mode == "legacy"
    if legacy:
        loader, legacy_loader = host.loader, LegacyLoading(host.store)

        def start(selection, ahead=None):
            legacy_loader.selection = selection
            return legacy_loader
        host.loader = type("Legacy", (), {"start": staticmethod(start), "copies": 0, "cache": None,
                                          "clear": lambda self: None})()
    samples = []
    try:
        host.answer(query(0))  # warm-up (allocator, copy engine, LRU rows)
        for repeat in range(repeats):
            if mode in ("side+lru", "side+lru:copies", "side+lru:repeat", "side+lru+overlap"):
                host.loader.cache.clear()
                if mode == "side+lru:repeat":
                    host.answer(query(0))
            elif mode == "side+lru:next":
                host.loader.cache.clear()
                host.answer(query(repeat))
            before = host.timings.to_dict()
            target = query(0) if mode != "side+lru:next" else query(repeat + 1)
            first = timed(device, lambda: host.answer(target))
            after = host.timings.to_dict()
            delta = {key: after["extra"][key] - before["extra"][key]
                     for key in ("retrieval_select_ms", "retrieval_load_ms", "answer_prefill_ms", "retrieval_copies",
                                 "gpu_cache_hits", "gpu_cache_misses")}
            delta.update(first_token_ms=first, retrieval_ms=after["retrieval_ms"] - before["retrieval_ms"])
            samples.append(delta)
    finally:
        host.config = config
        if legacy:
            host.loader = loader
    return {key: statistics.median(sample[key] for sample in samples) for key in samples[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--preset", default="7b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--frames", type=int, default=1800)
    parser.add_argument("--n-local", type=int, default=15000)
    parser.add_argument("--retrieve", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--block-sizes", default="64,196", help="comma list: 196 = no compression, else STC-Pruner k")
    parser.add_argument("--micro", default=True, action=argparse.BooleanOptionalAction,
                        help="also run the loading microbenchmark (bare store, no model)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    sizes = [int(size) for size in args.block_sizes.split(",")]
    meta = {"preset": args.preset, "dtype": args.dtype, "frames": args.frames, "retrieve": args.retrieve,
            "n_local": args.n_local, "repeats": args.repeats,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "torch": torch.__version__}
    began = time.time()
    loaded = build_random_llava_onevision(llava_onevision_config(args.preset), args.dtype, args.device, seed=0)
    rows, micro_rows = [], []
    for size in sizes:
        host = ReKVHost(loaded, ReKVConfig(preset=args.preset, dtype=args.dtype, device=args.device,
                                           n_local=args.n_local, retrieve_size=args.retrieve),
                        None if size >= 196 else {"pruner": {"tokens_per_frame": size}})
        host._side, host._cache = host.loader.side, host.loader.cache
        encoded = host.fill_history(args.frames)
        store = host.store
        moved = args.retrieve * store.num_layers * 2 * store.kv_heads * store.block_tokens * store.head_dim \
            * torch.empty((), dtype=store.dtype).element_size()
        bandwidth = copy_bandwidth(moved, device)
        for mode in ("legacy", "sync", "side:copies", "side", "side+lru:copies", "side+lru", "side+lru:repeat",
                     "side+lru:next", "side+overlap", "side+lru+overlap"):
            result = measure(host, mode, args.repeats, device)
            rows.append({"block_tokens": store.block_tokens, "blocks": store.num_blocks, "encoded_frames": encoded,
                         "mode": mode, "bytes_moved": moved, "one_copy_gb_per_s": bandwidth,
                         "floor_ms": moved / bandwidth / 1e6 if bandwidth == bandwidth else None, **result})
            print(json.dumps(rows[-1]), flush=True)
        host.close()
        del host, store
        _release(device)
    meta["host_seconds"] = round(time.time() - began, 1)
    write(out, args, meta, rows, micro_rows)  # written before the experimental part (see micro)
    if args.micro:
        del loaded
        _release(device)
        for size in reversed(sizes):  # the experimental zero-copy read (first size) last: a fault ends the run
            micro_rows += micro(args, size, device, zero_copy=size == sizes[0])
            _release(device)
        meta["seconds"] = round(time.time() - began, 1)
        write(out, args, meta, rows, micro_rows)


def _release(device) -> None:
    """Return cached device memory and pinned host pages (stores of 1800 blocks are GBs of pinned memory)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        if hasattr(torch._C, "_host_emptyCache"):
            torch._C._host_emptyCache()


def write(out: Path, args, meta: dict, rows: list[dict], micro_rows: list[dict]) -> None:
    (out / "rekv_answer_latency.json").write_text(json.dumps({"meta": meta, "rows": rows, "micro": micro_rows},
                                                             indent=1))
    columns = ["block_tokens", "mode", "first_token_ms", "retrieval_ms", "retrieval_select_ms", "retrieval_load_ms",
               "answer_prefill_ms", "retrieval_copies", "gpu_cache_hits", "bytes_moved", "floor_ms"]
    lines = [f"# ReKV answer latency ({meta['device']}, {args.preset} {args.dtype}, {args.frames} blocks, "
             f"top-{args.retrieve}, median of {args.repeats})", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    if micro_rows:
        lines += ["", f"## Loading step alone (bare store, {args.frames} blocks, top-{args.retrieve} per layer)", "",
                  "| block_tokens | mode | ms | GB/s | note |", "|---|---|---|---|---|"]
        for row in micro_rows:
            note = row.get("error", "") or ("" if row.get("equal_to_gather", True) else "NOT EQUAL")
            ms, rate = row.get("ms"), row.get("gb_per_s")
            lines.append(f"| {row['block_tokens']} | {row['mode']} | "
                         f"{'' if ms is None else f'{ms:.2f}'} | {'' if rate is None else f'{rate:.1f}'} | {note} |")
    (out / "rekv_answer_latency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
