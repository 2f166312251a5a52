"""The evaluation entry point with framework=livecc (tiny random weights, CPU) on the hand-written fixtures of
all five benchmarks, with synthetic videos. Answers are noise (random weights); the pipeline is checked:
every item answered from the 17 restricted tokens, no per-item error, streaming reuse, STC reaching the host."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"
ANNOTATIONS = {
    "ovobench": "ovo_bench/ovo_bench_mini.json", "streamingbench": "streamingbench/questions_real_mini.json",
    "mlvu": "mlvu/dev_mc_mini.json", "egoschema": "egoschema/subset_mini.json",
    "videomme": "videomme/videomme_rows_mini.json",
}
TINY = ["framework=livecc", "framework.preset=tiny", "framework.random_weights=true", "framework.dtype=float32",
        "framework.device=cpu", "framework.clip_min_pixels=784", "framework.min_pixels=784", "framework.max_pixels=3136",
        "progress=false"]
CHOICES = {"No", "Yes", *map(str, range(10)), "A", "B", "C", "D", "E"}


def _make_video(path: Path, seconds: int = 12, fps: int = 2, size: int = 40):
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(seconds * fps):
            image = np.full((size, size, 3), (37 * i) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _run_config(benchmark, root, out, *extra):
    from hydra import compose, initialize_config_dir

    from evaluation.config import register_schemas, to_run_config

    register_schemas()
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "configs")):
        cfg = compose(config_name="eval", overrides=[
            f"benchmark={benchmark}", f"benchmark.annotation={FIXTURES / ANNOTATIONS[benchmark]}", f"data.root={root}",
            f"output_dir={out}", *TINY, *extra])
    return to_run_config(cfg, env={})


def _synthesise_videos(run, root):
    """One synthetic video for every path the benchmark's loader will resolve."""
    from evaluation.common.paths import resolve_video
    from evaluation.registry import get_benchmark

    cfg = run.benchmark
    for sample in get_benchmark(cfg.name).load(Path(cfg.annotation), cfg, root).samples:
        path, _ = resolve_video(sample.video, root / cfg.video_dir if cfg.video_dir else root)
        if not path.is_file():
            _make_video(path)


def _predictions(out):
    return [json.loads(line) for path in Path(out).glob("*.jsonl") for line in path.read_text().splitlines()]


def test_cli_runs_livecc_on_ovobench_fixture(tmp_path):
    root = tmp_path / "data"
    _synthesise_videos(_run_config("ovobench", root, tmp_path / "unused"), root)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "evaluation", *TINY, "benchmark=ovobench", "benchmark.fps=2",
               f"benchmark.annotation={FIXTURES / ANNOTATIONS['ovobench']}", f"data.root={root}", f"output_dir={out}",
               "compression=stc", "compression.pruner.tokens_per_frame=1"]
    done = subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    predictions = _predictions(out)
    assert len(predictions) == 6 + 3 + 2 + 4  # 6 MCQ records + REC/SSR/CRR probes
    assert all(p["error"] is None and p["response"] in CHOICES for p in predictions)
    assert all(p["timings"]["visual_tokens_kept"] * 1 <= p["timings"]["visual_tokens_in"] for p in predictions)
    assert sum(p["timings"]["vit_selective_frames"] for p in predictions) > 0  # STC-Cacher ran
    assert (out / "metrics.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("benchmark,extra", [
    ("streamingbench", ["framework.mode=streaming", "benchmark.fps=2"]),
    ("mlvu", []), ("egoschema", []), ("videomme", []),
])
def test_runner_drives_livecc_on_every_benchmark(benchmark, extra, tmp_path):
    from evaluation.runner import evaluate

    root = tmp_path / "data"
    run = _run_config(benchmark, root, tmp_path / "out", *extra)
    _synthesise_videos(run, root)
    metrics = evaluate(run)
    predictions = _predictions(tmp_path / "out")
    assert predictions and metrics["counts"]["errors"] == 0
    assert all(p["response"] in CHOICES for p in predictions)
    if benchmark == "streamingbench":  # streaming mode: later questions on a video only add new frames
        by_video = {}
        for p in predictions:
            by_video.setdefault(p["video"], []).append(p)
        later = [p for group in by_video.values() for p in group[1:]]
        assert later and all(p["new_frames"] < p["query_time"] * 2 for p in later)
