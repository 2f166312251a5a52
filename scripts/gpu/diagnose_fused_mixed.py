"""Diagnose the compiled mixed STC-Cacher layer on CUDA (docs/stc/batched-selective.md: wrong rows on an
H200 when selective rows read a reference row of the same call).

    python scripts/gpu/diagnose_fused_mixed.py --out <dir>

For each tiny family tower (float64) and each variant {compiled, uncompiled} x {graph, no graph}, the
chunked calls of tests/gpu/test_cuda_families.py run with the in-call mixed layer ENABLED and are compared
with the eager cacher fed one frame per call: per frame max |diff|, per pass. Without graphs every call of
a compiled function is also re-run through the uncompiled function on the same inputs, so a wrong kernel
(compiled != uncompiled on identical inputs) is told apart from a wrong integration (same function
outputs, wrong final rows). Writes <dir>/diagnose_fused_mixed.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from stc import CacherConfig, attach_cacher  # noqa: E402
from stc.cacher import fused as fused_module  # noqa: E402
from tests.stc.families import TOWERS  # noqa: E402


def checked(name, pattern, log):
    compiled = fused_module.compiled_variant(name, pattern)
    plain = fused_module.FUNCTIONS[name]

    def run(*args):
        got = compiled(*args)
        if torch.cuda.is_current_stream_capturing():
            return got
        want = plain(*args)
        got_t, want_t = (got, want) if isinstance(got, tuple) else ((got,), (want,))
        diffs = [(g - w).abs().max().item() if g is not None else None for g, w in zip(got_t, want_t)]
        rows = [(g - w).abs().flatten(1).amax(1).gt(1e-9).nonzero().flatten().tolist() for g, w in zip(got_t[:1], want_t[:1])]
        log.append({"function": name, "max_diff_per_output": diffs, "wrong_output_rows": rows[0],
                    "hidden_rows": int(args[0].shape[0])})
        return got
    return run


def variant(tower, compile_, graph, interval, phase, rng_seed, log):
    family = TOWERS[tower]
    torch.manual_seed(0)
    model = family.build().to("cuda")
    units = family.frames(22, drift=0.2).to("cuda")
    eager = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=interval))
    with eager.use(eager.new_stream(phase=phase)):
        single = torch.cat([family.encode(model, units[i:i + 1]) for i in range(units.shape[0])])
    eager.detach()
    handle = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=interval, fused=True, cuda_graph=graph))
    handle.fused = fused_module.FusedSelectiveLayer(compile=compile_, in_call_mixed=True)
    calls = []
    if compile_ and not graph:
        handle.fused.compiled = lambda name, pattern: (handle.fused.calls.__setitem__(name, handle.fused.calls[name] + 1),
                                                       checked(name, pattern, calls))[1]
    rng = random.Random(rng_seed)
    sizes, left = [], units.shape[0]
    while left:
        sizes.append(min(left, rng.choice((1, 3, 8))))
        left -= sizes[-1]
    stream = handle.new_stream(phase=phase)
    passes = []
    for _ in range(2):
        stream.reset()
        with handle.use(stream):
            got = torch.cat([family.encode(model, chunk) for chunk in torch.split(units, sizes)])
        per_frame = (got - single).abs().flatten(1).amax(1).tolist()
        passes.append({"wrong_frames": [i for i, d in enumerate(per_frame) if d > 1e-9],
                       "max_diff": max(per_frame)})
    result = {"tower": tower, "compile": compile_, "graph": graph, "N": interval, "phase": phase, "sizes": sizes,
              "calls": dict(handle.fused.calls), "failed": handle.fused.failed, "passes": passes,
              "function_checks": [c for c in calls if c["wrong_output_rows"] or any(d and d > 1e-9 for d in c["max_diff_per_output"])][:12],
              "function_checks_total": len(calls)}
    handle.detach()
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    results = []
    with torch.inference_mode():
        for tower, interval, phase in (("siglip", 3, 1), ("siglip", 4, 3), ("dinov2", 4, 1)):
            for compile_, graph in ((True, False), (True, True), (False, False), (False, True)):
                if True:
                    log = []
                    try:
                        r = variant(tower, compile_, graph, interval, phase, 5, log)
                    except Exception as error:  # report and go on: this is a diagnostic
                        r = {"tower": tower, "compile": compile_, "graph": graph, "error": f"{type(error).__name__}: {error}"}
                    print(json.dumps(r), flush=True)
                    results.append(r)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnose_fused_mixed.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
