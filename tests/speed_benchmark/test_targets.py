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
    assert {k: t["status"] for k, t in v.items()} == {"vit_graph": "pass", "vit_eager": "pass",
                                                      "multistream_8": "pass", "prefill": "pass"}
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
