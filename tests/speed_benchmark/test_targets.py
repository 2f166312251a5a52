"""Target verdicts from synthetic rows: pass / MISS with the size of the miss / n/a with the reason."""

from speed_benchmark.compose import compose
from speed_benchmark.records import Row, compare
from speed_benchmark.targets import evaluate


def _row(case, name, method, mode, median, params=None, higher=False):
    return Row(case, name, method, mode, params or {}, "ms", [median], higher_is_better=higher).finalize()


def _cfg():
    return compose("llava_ov_7b", out_dir="unused")


def _verdicts(rows):
    return {t["id"]: t for t in evaluate(rows, _cfg())}


def test_all_pass():
    base_pre = _row("prefill", "baseline c=8", "baseline", "eager", 100.0, {"frames_per_chunk": 8})
    stc_pre = _row("prefill", "stc+pruner c=8", "stc", "eager", 35.0, {"frames_per_chunk": 8})
    compare(stc_pre, base_pre, None)
    rows = [_row("vit", "baseline eager", "baseline", "eager", 14.0), _row("vit", "baseline graph", "baseline", "graph", 5.0),
            _row("vit", "stc eager N=4", "stc", "eager", 12.0), _row("vit", "stc graph N=4", "stc", "graph", 2.9),
            _row("multistream", "b", "baseline", "graph", 300.0, {"S": 8}, True),
            _row("multistream", "s", "stc", "graph", 600.0, {"S": 8, "N": 4, "r": 0.25}, True), base_pre, stc_pre]
    v = _verdicts(rows)
    issue4 = {k: t["status"] for k, t in v.items() if k in ("vit_graph", "vit_eager", "multistream_8", "prefill")}
    assert issue4 == {"vit_graph": "pass", "vit_eager": "pass", "multistream_8": "pass", "prefill": "pass"}
    assert v["vit_graph"]["measured"] == 0.58 and v["multistream_8"]["measured"] == 2.0


def test_misses_say_by_how_much_and_missing_rows_are_na():
    rows = [_row("vit", "baseline eager", "baseline", "eager", 10.0), _row("vit", "stc eager N=4", "stc", "eager", 5.0)]
    v = _verdicts(rows)
    assert v["vit_eager"]["status"] == "MISS" and v["vit_eager"]["detail"] == "2.00x the goal"
    assert v["vit_graph"]["status"] == "n/a" and "graph" in v["vit_graph"]["detail"]
    assert v["multistream_8"]["status"] == "n/a" and v["prefill"]["status"] == "n/a"


def test_throughput_miss_reports_shortfall():
    rows = [_row("multistream", "b", "baseline", "eager", 100.0, {"S": 8}, True),
            _row("multistream", "s", "stc", "eager", 90.0, {"S": 8, "N": 4, "r": 0.25}, True)]
    t = _verdicts(rows)["multistream_8"]
    assert t["status"] == "MISS" and t["measured"] == 0.9 and t["detail"] == "50% short of the goal"


def _e2e(name, method, median, chunk, host_mode, prefill_ms=None, frames=16):
    params = {"frames_per_chunk": chunk, "host_mode": host_mode}
    if method == "stc":
        params.update(N=4, r=0.25, k=64)
    row = _row("e2e", name, method, "graph", median, params)
    if prefill_ms is not None:  # two passes of host timings; the stage per frame is their median
        row.extra["host_timings"] = [{"frames": frames, "prefill_ms": prefill_ms * frames},
                                     {"frames": frames, "prefill_ms": prefill_ms * frames * 1.1}]
    return row


def test_issue14_targets_read_the_best_graphed_variant_and_the_host_modes():
    rows = [
        _row("vit", "baseline graph", "baseline", "graph", 3.5), _row("vit", "stc graph N=4", "stc", "graph", 3.8),
        _row("vit", "stc graph+fused N=4", "stc", "graph", 2.65),                    # best graphed: 0.757
        _row("vit", "baseline graph c=8", "baseline", "graph", 2.0), _row("vit", "stc graph+fused N=4 c=8", "stc", "graph", 1.2),
        _row("multistream", "b16", "baseline", "graph", 500.0, {"S": 16}, True),
        _row("multistream", "s16", "stc", "graph", 950.0, {"S": 16, "N": 4, "r": 0.25}, True),
        _e2e("baseline host=eager rekv c=1", "baseline", 40.0, 1, "eager"),
        _e2e("stc graph N=4 host=graph rekv c=1", "stc", 11.0, 1, "graph"),
        _e2e("stc graph+fused N=4 host=graph rekv c=1", "stc", 9.5, 1, "graph"),
        _e2e("stc graph+fused N=4 host=eager rekv c=1", "stc", 5.0, 1, "eager"),      # other host mode: ignored
        _e2e("baseline host=graph rekv c=8", "baseline", 7.5, 8, "graph", prefill_ms=5.0),
        _e2e("stc graph+fused N=4 host=graph rekv c=8", "stc", 3.9, 8, "graph", prefill_ms=2.0),
        _row("long", "stc graph N=4 host=graph rekv", "stc", "graph", 32.0),
        _row("long", "baseline host=graph rekv", "baseline", "graph", 38.0),
    ]
    v = _verdicts(rows)
    assert v["vit_graphed"]["status"] == "MISS" and v["vit_graphed"]["measured"] == round(2.65 / 3.5, 4)
    assert v["vit_chunk8"]["status"] == "pass" and v["vit_chunk8"]["measured"] == 0.6
    assert v["multistream_16"]["status"] == "pass" and v["multistream_16"]["measured"] == 1.9
    assert v["ingest_c1_ms"]["status"] == "pass" and v["ingest_c1_ms"]["measured"] == 9.5
    assert v["ingest_c8_ms"]["status"] == "MISS" and v["ingest_c8_ms"]["detail"] == "1.30x the goal"
    assert v["ingest_vs_eager"]["measured"] == round(9.5 / 40.0, 4)
    # pre-fill stage per frame: median of two passes (2.0 and 2.2 -> upper median 2.2; 5.0 and 5.5 -> 5.5)
    assert v["prefill_stage_c8"]["measured"] == 0.4 and v["prefill_stage_c8"]["status"] == "pass"
    assert v["first_token_ms"]["measured"] == 32.0 and v["first_token_ms"]["status"] == "pass"


def test_issue14_targets_are_na_with_reasons_when_rows_are_absent():
    v = _verdicts([_row("vit", "baseline graph", "baseline", "graph", 3.5)])
    for key in ("vit_graphed", "vit_chunk8", "multistream_16", "ingest_c1_ms", "ingest_c8_ms", "ingest_vs_eager",
                "prefill_stage_c8", "first_token_ms"):
        assert v[key]["status"] == "n/a" and v[key]["detail"], key


def test_stage_ms_is_the_median_over_passes_per_frame_from_top_level_or_extra():
    from speed_benchmark.records import stage_ms

    row = _row("e2e", "stc", "stc", "graph", 1.0)
    row.extra["host_timings"] = [{"frames": 4, "prefill_ms": 10.0, "extra": {"retrieval_ms": 3.0}},
                                 {"frames": 4, "prefill_ms": 14.0, "extra": {"retrieval_ms": 5.0}},
                                 {"frames": 0, "prefill_ms": 99.0},      # a pass without frames: left out
                                 {"frames": 4, "extra": {}}]             # a pass without the stage: left out
    assert stage_ms(row, "prefill_ms") == (10.0 / 4 + 14.0 / 4) / 2
    assert stage_ms(row, "retrieval_ms", per_frame=False) == 4.0
    assert stage_ms(row, "answer_ms") is None


def test_multistream_16_needs_r_025_like_multistream_8():
    rows = [_row("multistream", "b16", "baseline", "graph", 500.0, {"S": 16}, True),
            _row("multistream", "s16", "stc", "graph", 950.0, {"S": 16, "N": 4, "r": 0.5}, True)]
    v = _verdicts(rows)
    assert v["multistream_16"]["status"] == "n/a" and "r=0.25" in v["multistream_16"]["detail"]


def test_prefill_stage_target_is_na_when_the_run_did_not_prune_196_to_64():
    """The label says 196->64: a run with other token counts gets n/a with the counts, not a verdict."""
    rows = [_e2e("baseline host=graph rekv c=8", "baseline", 7.5, 8, "graph", prefill_ms=5.0),
            _e2e("stc graph+fused N=4 host=graph rekv c=8", "stc", 3.9, 8, "graph", prefill_ms=2.0)]
    cfg = compose("llava_ov_7b", ["stc.tokens_per_frame=32"], out_dir="unused")
    verdict = {t["id"]: t for t in evaluate(rows, cfg)}["prefill_stage_c8"]
    assert verdict["status"] == "n/a" and verdict["detail"] == "run pruned 196->32"
