"""`vit.frames_per_call`: the ViT case timed with several consecutive frames per call (ReKV's encode
chunk), on the tiny preset on CPU: rows per chunk size, each compared with the dense tower at the same
chunk, and the STC stream followed the same schedule as one frame per call."""

import math

from speed_benchmark.compose import compose
from speed_benchmark.config import SpeedConfigError
from speed_benchmark.runner import run

import pytest


def test_chunked_vit_rows_have_their_own_baseline_and_the_same_schedule(tmp_path):
    frames, n = 7, 3
    cfg = compose("tiny", ["repeats=1", "warmup=1", f"frames={frames}", "multistream.enabled=false", "e2e.enabled=false",
                           "prefill.enabled=false", f"vit.intervals=[{n}]", f"stc.cache_interval={n}", "progress=false",
                           "plot=false", "device=cpu", "vit.frames_per_call=[1,3]"], out_dir=str(tmp_path))
    result, _ = run(cfg)
    rows = {r["name"]: r for r in result["rows"] if r["case"] == "vit"}
    assert set(rows) == {"baseline eager", "stc eager N=3", "baseline eager c=3", "stc eager N=3 c=3"}
    chunked = rows["stc eager N=3 c=3"]
    assert chunked["params"]["frames_per_call"] == 3 and rows["stc eager N=3"]["params"]["frames_per_call"] == 1
    assert chunked["baseline"] == "baseline eager c=3" and rows["stc eager N=3"]["baseline"] == "baseline eager"
    refs = math.ceil(frames / n)
    assert (chunked["extra"]["cacher"]["reference_frames"], chunked["extra"]["cacher"]["selective_frames"]) == (refs, frames - refs)
    assert chunked["extra"]["frame_is_reference"] == [None] * frames and chunked["extra"]["selective_ms"] is None
    assert len(chunked["extra"]["per_frame_ms"][0]) == frames


def test_frames_per_call_must_be_positive(tmp_path):
    with pytest.raises(SpeedConfigError, match="vit.frames_per_call"):
        run(compose("tiny", ["device=cpu", "vit.frames_per_call=[0]"], out_dir=str(tmp_path)))
