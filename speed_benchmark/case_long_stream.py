"""Case (5): answer latency after a long stream (e2e.long_frames frames in memory, e.g. 1800 = one hour
at 0.5 fps), for the first variant of each kind in `e2e.long_variants`, on the first chunk size.

A streaming host answers many questions about a long video; what the user waits for is the time to the
first answer token (retrieval over the whole memory + prompt pre-fill + one token) and then the decode
rate. Encoding an hour of video would take minutes, so the host fills its memory itself through the
optional capability `host.fill_history(frames) -> frames really encoded` (ReKV: random blocks for old
frames, real encodes for the local window). Hosts without it are skipped with the reason.

Procedure (as upstream's answer-latency measurement): reset, fill, untimed warm-up answers, then
`long_repeats` x [a 1-token answer (first token), a full answer]. Stage numbers are differences of the
host's `timings` around each answer. The warm-up runs each of the two answers WARMUP_ANSWERS times:
graphed hosts capture a step at the second sighting of its shape (frameworks/common/cuda_graphs.py), so
with one warm-up the first timed question carried the captures (191-272 ms against ~30 in the H200 runs
of 2026-11-30, which made the p90 of 3 a capture time). Every timed question asks the same thing as the
warm-ups, so the device LRU of retrieved blocks is warm: these are "same question again" numbers; the
cold-LRU first token is measured by scripts/gpu/rekv_answer_latency.py (docs/rekv/answer-path.md).
"""

from __future__ import annotations

import statistics

from frameworks.common.timing import EventTimer
from frameworks.protocol import Query
from speed_benchmark.records import Row, RunContext

WARMUP_ANSWERS = 2  # untimed runs of each answer kind: the 2nd captures the graphs of a graphed host


def _delta(before: dict, after: dict, key: str) -> float:
    """Growth of a stage time between two `timings.to_dict()` snapshots (top level or `extra`)."""
    get = lambda t: t.get(key, t.get("extra", {}).get(key, 0.0)) or 0.0  # noqa: E731
    return get(after) - get(before)


def run(ctx: RunContext, host, label: str, ingest_row: Row) -> list[Row]:
    from speed_benchmark.case_e2e import QUESTION

    cfg = ctx.cfg.e2e
    if not hasattr(host, "fill_history"):
        ctx.skip("long", f"{label} {cfg.host}", f"host {cfg.host!r} has no fill_history(frames): cannot simulate a long stream")
        return []
    host.reset()
    encoded = host.fill_history(cfg.long_frames)
    full = Query(**{**QUESTION.__dict__, "max_new_tokens": cfg.max_new_tokens})
    single = Query(**{**QUESTION.__dict__, "max_new_tokens": 1})
    for query in (single, full):
        for _ in range(WARMUP_ANSWERS):
            host.answer(query)
    timer, stages = EventTimer(ctx.device), []
    for _ in range(cfg.long_repeats):
        before = host.timings.to_dict()
        timer.call(lambda: host.answer(single), "first_token")
        middle = host.timings.to_dict()
        timer.call(lambda: host.answer(full), "full_answer")
        after = host.timings.to_dict()
        stages.append({"retrieval_ms": _delta(before, middle, "retrieval_ms"),
                       "answer_prefill_ms": _delta(before, middle, "answer_prefill_ms"),
                       "generated_tokens": _delta(middle, after, "generated_tokens"),
                       # the decode stage of the full answer minus that of the 1-token one: the decoding
                       # steps alone, paired within one repeat (retrieval's variance does not enter)
                       "decode_steps_ms": _delta(middle, after, "decode_ms") - _delta(before, middle, "decode_ms")})
    first, whole = timer.finish("first_token"), timer.finish("full_answer")
    tokens = int(statistics.median(s["generated_tokens"] for s in stages))
    extra = after.get("extra", {})
    params = {k: v for k, v in ingest_row.params.items() if k in ("k", "N", "r", "fused", "frames_per_chunk")}
    params.update(frames=cfg.long_frames, encoded_frames=encoded)
    return [Row("long", f"{label} {cfg.host}", ingest_row.method, ingest_row.mode, params, "ms", first, extra={
        "full_answer_ms": whole, "generated_tokens": tokens,
        "decode_ms_per_token": statistics.median(s["decode_steps_ms"] for s in stages) / max(1, tokens - 1),
        "retrieval_ms": statistics.median(s["retrieval_ms"] for s in stages),
        "answer_prefill_ms": statistics.median(s["answer_prefill_ms"] for s in stages),
        "blocks": extra.get("blocks"), "block_tokens": extra.get("block_tokens"), "peak_memory_mb": after.get("peak_memory_mb"),
        "stored_gib": extra["stored_bytes"] / 2**30 if extra.get("stored_bytes") is not None else None,
    }).finalize()]
