"""Shared helpers: synthetic constant-grey videos (PyAV, written in tmp_path) and config composition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
CONFIG_DIR = str(REPO / "configs")

# grey level of every synthetic video used by the fixture annotations. The toy host answers option
# floor(level / 256 * n_options) and "Yes" iff level > 127, so with 4 options: 32->A, 96->B, 160->C, 224->D;
# with 5 options: 25->A, 128->C, 230->E.
LEVELS = {
    "ovobench": {"src_videos/Ego4D/clips/kitchen.mp4": 224, "src_videos/YouTube_Games/game.mp4": 32,
                 "src_videos/COIN/steps.mp4": 224, "src_videos/MovieNet/film.mp4": 32,
                 "src_videos/perception_test/count.mp4": 96},
    "streamingbench": {"videos/sample_1_real.mp4": 160, "videos/sample_2_real.mp4": 32},
    "mlvu": {"MLVU/video/1_plotQA/movie_a.mp4": 96, "MLVU/video/4_count/count_b.mp4": 224},
    "egoschema": {"egoschema/videos/uid-1.mp4": 128, "egoschema/videos/uid-2.mp4": 230, "egoschema/videos/uid-3.mp4": 25},
    "videomme": {"data/vidS.mp4": 32, "data/vidM.mp4": 224, "data/vidL.mp4": 160},
}
ANNOTATIONS = {
    "ovobench": "ovo_bench/ovo_bench_mini.json",
    "streamingbench": "streamingbench/questions_real_mini.json",
    "mlvu": "mlvu/dev_mc_mini.json",
    "egoschema": "egoschema/subset_mini.json",
    "videomme": "videomme/videomme_rows_mini.json",
}


def make_video(path: Path, seconds: float = 20.0, native_fps: int = 2, level: int = 128, size: int = 32) -> Path:
    """Write a constant-grey mpeg4 mp4 (no system ffmpeg needed: PyAV bundles its codecs)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=native_fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        image = np.full((size, size, 3), level, dtype=np.uint8)
        for _ in range(int(seconds * native_fps)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def data_root(tmp_path):
    """factory(benchmark) -> data root holding that benchmark's synthetic videos."""

    def build(benchmark: str) -> Path:
        root = tmp_path / "data"
        for rel, level in LEVELS[benchmark].items():
            make_video(root / rel, level=level)
        return root

    return build


def compose(overrides: list[str]):
    """Compose configs/eval.yaml with the real groups and schema, as `python -m evaluation` does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from evaluation.config import register_schemas

    register_schemas()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        return hydra_compose(config_name="eval", overrides=overrides)


def run_config(benchmark: str, root: Path, out: Path, *extra: str, env=None):
    from evaluation.config import to_run_config

    cfg = compose([f"benchmark={benchmark}", "framework=toy", f"data.root={root}",
                   f"benchmark.annotation={FIXTURES / ANNOTATIONS[benchmark]}", f"output_dir={out}", "progress=false", *extra])
    return to_run_config(cfg, env=env or {})


@pytest.fixture
def ev():
    """Helpers for evaluation tests (pytest runs in importlib mode, so tests reach them via this fixture)."""
    from types import SimpleNamespace

    return SimpleNamespace(REPO=REPO, FIXTURES=FIXTURES, LEVELS=LEVELS, ANNOTATIONS=ANNOTATIONS,
                           make_video=make_video, compose=compose, run_config=run_config)
