"""decord reader: fps grid, prefix/window reads, thinning, missing and corrupt files."""

import pytest
import torch

from evaluation.types import VideoError
from evaluation.video import VideoSource, sample_stride, thin


def test_fps_grid_and_prefix_windows(tmp_path, ev):
    path = ev.make_video(tmp_path / "v.mp4", seconds=10, native_fps=4, level=96, size=32)
    source = VideoSource(path, fps=1.0)
    assert source.indices == list(range(0, 40, 4)) and source.timestamps == [float(t) for t in range(10)]
    assert source.window(None, 4.5) == [0, 1, 2, 3, 4]
    assert source.window(4.5, 9.0) == [5, 6, 7, 8, 9]
    assert source.window(4.0, 4.0) == []          # nothing new between two questions at the same time
    assert source.window(None, 100.0) == list(range(10))  # query beyond the end: whole video
    frames, stamps = source.read([0, 3])
    assert frames.dtype == torch.uint8 and tuple(frames.shape) == (2, 32, 32, 3) and stamps == [0.0, 3.0]
    assert abs(frames.float().mean().item() - 96) < 4


def test_half_fps_and_resize(tmp_path, ev):
    path = ev.make_video(tmp_path / "v.mp4", seconds=10, native_fps=4, size=32)
    source = VideoSource(path, fps=0.5, height=16, width=64)
    assert source.timestamps == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert tuple(source.read([1])[0].shape) == (1, 16, 64, 3)


def test_stride_rule_and_thin():
    assert sample_stride(29.97, 1.0) == 30 and sample_stride(30, 0.5) == 60 and sample_stride(0.4, 1.0) == 1
    assert thin(range(10), 4) == [0, 3, 6, 9] and thin(range(3), 4) == [0, 1, 2] and thin(range(5), 0) == list(range(5))


def test_missing_and_corrupt_files_raise_video_error(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        VideoSource(tmp_path / "missing.mp4", fps=1.0)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01 definitely not an mp4 " * 50)
    with pytest.raises(VideoError, match="corrupt.mp4: cannot open video"):
        VideoSource(corrupt, fps=1.0)
