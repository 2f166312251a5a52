"""LiveCC's own OVO-Bench item expansion and scoring on the hand-written fixture (hand-checked values)."""

import json
from pathlib import Path

import pytest

from frameworks.livecc import ovobench

FIXTURE = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "ovo_bench" / "ovo_bench_mini.json"


def test_expansion_of_the_fixture():
    items = {item.id: item for item in ovobench.expand(json.loads(FIXTURE.read_text()))}
    assert len(items) == 6 + 3 + 2 + 4
    epm = items["0"]
    assert (epm.start, epm.end, epm.answer) == (0.0, 6.0, "D")
    assert epm.prompt == ("Which drawer did I open first?\nA. the top drawer\nB. the left drawer\nC. the right drawer\n"
                          "D. the bottom drawer\nPlease select the correct answer.")
    crr = [items[f"8_{i}"] for i in range(4)]
    assert [(c.start, c.end, c.answer) for c in crr] == [(2.0, 3.0, "No"), (2.0, 6.0, "No"), (2.0, 12.0, "Yes"), (2.0, 19.0, "Yes")]
    assert "\n\nThe man picks up the phone, who is calling him?\n\n" in crr[0].prompt
    rec = [items[f"6_{i}"] for i in range(3)]
    assert [(r.start, r.end, r.answer) for r in rec] == [(0.0, 4.0, "1"), (0.0, 9.0, "2"), (0.0, 16.0, "3")]
    assert "How many times did they clapping hands?" in rec[0].prompt
    assert items["7_1"].answer == "No" and "\n\nclose the box\n\n" in items["7_1"].prompt


def test_scoring_prefix_match_and_category_means():
    items = ovobench.expand(json.loads(FIXTURE.read_text()))
    by_id = {item.id: item for item in items}
    responses = {item.id: item.answer for item in items}
    responses["0"] = "A"           # EPM 1 of 2 right
    responses["6_0"] = "10"        # REC: "10"[:1] = "1" == "1" -> counted right (prefix rule)
    responses["8_0"] = "Yes"       # CRR 3 of 4 right
    result = ovobench.score([(by_id[i], r) for i, r in responses.items()])
    assert result["tasks"]["EPM"] == 0.5 and result["tasks"]["REC"] == 1.0 and result["tasks"]["CRR"] == 0.75
    assert result["categories"]["backward"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert result["categories"]["forward"] == pytest.approx((1 + 1 + 0.75) / 3)
    assert result["overall"] == pytest.approx((1.0 + (2.5 / 3) + (2.75 / 3)) / 3)
    assert ovobench.correct("1", "10") is False


def test_bad_records_name_the_field():
    with pytest.raises(ValueError, match="'options'"):
        ovobench.expand([{"id": 1, "task": "EPM", "video": "v.mp4", "realtime": 3, "question": "q", "gt": 0}])
    with pytest.raises(ValueError, match="unknown task"):
        ovobench.expand([{"id": 1, "task": "XYZ", "video": "v.mp4"}])


@pytest.mark.slow
def test_native_script_runs_the_fixture_with_stc(tmp_path):
    import importlib.util

    import numpy as np

    import av

    records = json.loads(FIXTURE.read_text())
    for video in {r["video"] for r in records}:
        path = tmp_path / "videos" / video
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(path), "w") as container:
            stream = container.add_stream("mpeg4", rate=2)
            stream.width = stream.height = 40
            stream.pix_fmt = "yuv420p"
            for i in range(40):
                frame = np.full((40, 40, 3), (29 * i) % 256, dtype=np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    script = Path(__file__).resolve().parents[3] / "scripts" / "livecc_ovobench_native.py"
    spec = importlib.util.spec_from_file_location("livecc_ovobench_native", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--annotation", str(FIXTURE), "--video-dir", str(tmp_path / "videos"), "--out", str(tmp_path / "out"),
            "--preset", "tiny", "--dtype", "float32", "--device", "cpu", "--compression", "stc",
            "--cache-interval", "2", "--tokens-per-frame", "1", "--set", "clip_min_pixels=784"]
    metrics = module.main(argv)
    assert metrics["items"] == 15 and metrics["errors"] == 0
    lines = [json.loads(x) for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    crr = next(p for p in lines if p["id"] == "8_2")
    assert (crr["start"], crr["end"]) == (2.0, 12.0) and crr["timings"]["frames"] == 21  # [2, 12] at 2 fps, both ends in (as upstream)
    assert all(p["response"] in {"No", "Yes", *map(str, range(10)), *"ABCDE"} for p in lines)
    assert module.main(argv)["items"] == 15  # resumes: nothing recomputed, same report
    assert len((tmp_path / "out" / "predictions.jsonl").read_text().splitlines()) == 15
