"""Entry point around the ReKV host: the evaluation CLI `python -m evaluation framework=rekv ...` on real
fixture annotations with synthetic videos. (ReKV latency: `python -m speed_benchmark`, tests/speed_benchmark.)"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "fixtures"


def _write_video(path: Path, frames: int = 24, fps: int = 4):
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = np.zeros((48, 64, 3), np.uint8)
            image[:, (3 * i) % 56:(3 * i) % 56 + 8] = 255
            image[..., 1] = 5 * i
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.mark.skipif(not (FIXTURES / "mlvu").is_dir(), reason="../shared/fixtures/mlvu not present")
def test_evaluation_cli_runs_rekv_with_stc_on_fixture_annotations(tmp_path):
    pytest.importorskip("decord")
    samples = json.loads((FIXTURES / "mlvu" / "dev_debug_mc.sample.json").read_text())[:2]
    (tmp_path / "dev_debug_mc.json").write_text(json.dumps(samples))
    for sample in samples:
        _write_video(tmp_path / sample["video_path"])
    out = tmp_path / "out"
    command = [sys.executable, "-m", "evaluation", "framework=rekv", "framework.preset=tiny",
               "framework.dtype=float32", "framework.device=cpu", "framework.n_local=200", "benchmark=mlvu",
               "compression=stc", "compression.pruner.tokens_per_frame=8", f"data.root={tmp_path}",
               f"output_dir={out}", "progress=false"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    predictions = [json.loads(line) for path in out.glob("*.jsonl") for line in path.read_text().splitlines()]
    assert len(predictions) == sum(len(s["conversations"]) for s in samples)
    assert all(p["error"] is None for p in predictions)
    first = predictions[0]["timings"]
    assert first["frames"] > 0 and first["visual_tokens_kept"] == 8 * first["frames"]
    assert first["vit_reference_frames"] + first["vit_selective_frames"] == first["frames"]
    assert (out / "metrics.json").is_file()
