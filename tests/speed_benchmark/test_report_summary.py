"""The paper-style summary compares the baseline with STC's fastest variant in the same execution mode
(graphed plain or graphed fused layers), one frame per call - not whichever variant is named first."""

from speed_benchmark.records import Row
from speed_benchmark.report import _summary


def _row(name, method, mode, median, params):
    return Row("vit", name, method, mode, {"frames": 16, **params}, "ms/frame", [median]).finalize()


def test_summary_takes_the_fastest_stc_variant_of_the_baselines_mode():
    rows = [_row("baseline graph", "baseline", "graph", 3.5, {"frames_per_call": 1}),
            _row("stc eager N=4", "stc", "eager", 1.0, {"frames_per_call": 1, "N": 4}),      # other mode
            _row("stc graph N=4", "stc", "graph", 3.8, {"frames_per_call": 1, "N": 4}),
            _row("stc graph+fused N=4", "stc", "graph", 2.5, {"frames_per_call": 1, "N": 4}),
            _row("stc graph+fused N=4 c=8", "stc", "graph", 1.2, {"frames_per_call": 8, "N": 4}),  # per frame, chunked
            _row("stc graph+fused N=2", "stc", "graph", 2.0, {"frames_per_call": 1, "N": 2})]      # other interval
    line = _summary(rows, 16, 4)[3]
    assert line.startswith("| + STC (stc graph+fused N=4;") and "| 40.0 (" in line  # 2.5 ms x 16 frames
