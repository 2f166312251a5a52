"""`python -m stc.audit`: argument errors name the key (exit 2); on a tiny random tower saved to disk
and a synthetic video, the audit's numbers are checked against hand-computed ones (FLOP fraction of
the fixed policy = stc.flops' F(N, r); reference frames are exact; N=1 everything exact); the video
reader's decord and PyAV paths agree; Qwen2-VL patches match the stock image processor.

Opt-in (STC_TEST_AUDIT=1): the real DINOv2-S checkpoint and clips from scripts/stc_audit_fetch.sh."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from stc.audit.__main__ import main
from stc.audit.cli import AuditArgumentError, parse_args
from stc.flops import cacher_flop_fraction

CACHE = Path(os.environ.get("STC_AUDIT_CACHE", Path.home() / ".cache/stc-audit"))


def write_video(path: Path, frames: np.ndarray, rate: int = 10) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuvj420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def moving_clip(count=30, height=48, width=64, seed=0):
    """A textured scene panning right by 2 px per source frame, with a cut to another scene at 2/3."""
    rng = np.random.default_rng(seed)
    blocks = (height // 8 + 1, (width + 2 * count) // 8 + 1, 3)  # 8-px blocks: survives JPEG, shifts visibly
    scenes = [np.kron(rng.integers(0, 255, blocks), np.ones((8, 8, 1))).astype(np.uint8) for _ in range(2)]
    return np.stack([scenes[int(i >= 2 * count // 3)][:, 2 * i : 2 * i + width] for i in range(count)])


@pytest.fixture(scope="module")
def tiny_dinov2(tmp_path_factory):
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                          image_size=28, patch_size=7, layerscale_value=0.5)
    folder = tmp_path_factory.mktemp("dinov2-tiny")
    Dinov2Model(config).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "clip.avi", moving_clip())


def run_audit(tmp_path, model, video, *extra):
    out = tmp_path / "out"
    code = main([f"model={model}", f"video={video}", "fps=4", "size=28", f"out={out}", *extra])
    assert code == 0
    return json.loads((out / "audit.json").read_text()), out


def test_fixed_policy_numbers(tmp_path, tiny_dinov2, clip_file):
    data, out = run_audit(tmp_path, tiny_dinov2, clip_file, "stc.update_ratio=0.25", "stc.cache_interval=4", "chunk=3")
    frames = data["frames"]
    assert len(frames) == 12  # 3 s at 10 fps sampled at 4 fps
    assert [f["reference"] for f in frames] == [i % 4 == 0 for i in range(12)]
    tokens = data["tokens_per_frame"]
    assert tokens == 17 and all(f["recomputed_per_layer"] == ([17] * 3 if f["reference"] else [4] * 3) for f in frames)
    # 12 frames = 3 full periods of N=4, so the fraction is F(N, r) with k = floor(17 * 0.25) = 4 tokens;
    # Dinov2's MLP is mlp_ratio (4) x d = 128 wide (its config ignores intermediate_size)
    assert data["flop_fraction"] == pytest.approx(cacher_flop_fraction(4, 4 / 17, 32, 128, 17), rel=1e-12)
    assert all(f["mean_cosine"] == pytest.approx(1.0, abs=1e-6) for f in frames if f["reference"])
    assert data["min_frame_cosine"] < 0.999  # the panning clip must make selective frames differ
    assert data["mean_cosine"] == pytest.approx(np.mean([f["mean_cosine"] for f in frames]))
    assert (out / "audit.png").stat().st_size > 1000 and "| frame |" in (out / "audit.md").read_text()


def test_every_frame_reference_is_exact(tmp_path, tiny_dinov2, clip_file):
    data, _ = run_audit(tmp_path, tiny_dinov2, clip_file, "stc.cache_interval=1")
    assert data["flop_fraction"] == pytest.approx(1.0) and data["min_frame_cosine"] == pytest.approx(1.0, abs=1e-6)


def test_adaptive_policy_refreshes_at_the_cut_and_pays_for_its_signal(tmp_path, tiny_dinov2, clip_file):
    data, _ = run_audit(tmp_path, tiny_dinov2, clip_file, "stc.refresh=adaptive", "stc.change_tau=0.5",
                        "stc.refresh_threshold=0.5", "stc.min_interval=1", "stc.max_interval=100", "chunk=5")
    refs = [f["index"] for f in data["frames"] if f["reference"]]
    cut = next(i for i, f in enumerate(data["frames"]) if f["time_s"] >= 2.0)  # the cut is at source frame 20
    assert refs[0] == 0 and cut in refs
    decision = 17 * 2 * 32 * 32  # layer-0 keys of every frame
    for f in data["frames"]:
        assert f["change"] is None if f["index"] == 0 else 0.0 <= f["change"] <= 1.0
        dense = data["dense_frame_gflops"] * 1e9
        if f["reference"]:
            assert f["flops"] == pytest.approx(dense + decision)


@pytest.mark.parametrize("argv, knob", [
    (["video=v", "out=o"], "model"),
    (["model=m", "video=v", "out=o", "fps=0"], "fps"),
    (["model=m", "video=v", "out=o", "stc.cache_interval=two"], "stc.cache_interval"),
    (["model=m", "video=v", "out=o", "stc.refresh=sometimes"], "stc.refresh"),
    (["model=m", "video=v", "out=o", "stc.max_interval=0"], "stc.max_interval"),
    (["model=m", "video=v", "out=o", "stc.bogus=1"], "stc.bogus"),
    (["model=m", "video=v", "out=o", "frames=3"], "frames"),
])
def test_bad_arguments_name_the_key(argv, knob):
    with pytest.raises(AuditArgumentError, match=knob.replace(".", r"\.")):
        parse_args(argv)


def test_cli_exit_status_and_one_line(tmp_path, capsys, tiny_dinov2):
    assert main([f"model={tiny_dinov2}", f"video={tmp_path / 'missing.mp4'}", f"out={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.mp4" in err and "\n" not in err


def test_parse_args_reads_typed_values():
    cfg = parse_args(["model=m", "video=v", "out=o", "stc.refresh=adaptive", "stc.max_update_ratio=0.5",
                      "stc.recompute_prefix=true", "max_frames=null"])
    assert cfg.stc.refresh == "adaptive" and cfg.stc.max_update_ratio == 0.5 and cfg.stc.recompute_prefix is True
    assert cfg.max_frames is None and cfg.stc.cache_interval == 4 and cfg.stc.update_ratio == 0.25


def test_video_reader_backends_agree(tmp_path):
    from stc.audit.video import _read_pyav, read_frames

    clip = write_video(tmp_path / "c.avi", moving_clip(25))
    frames, times = read_frames(clip, fps=4, max_frames=7)
    other, other_times = _read_pyav(clip, 4, 7)
    assert times == other_times == [i / 4 for i in range(7)]
    assert np.abs(frames.astype(int) - other.astype(int)).max() <= 2  # same source frames (JPEG decode rounding)
    # frame i shows source frame floor(10 * i / 4): the pan offset tells which one
    source = moving_clip(25)
    picked = [int(np.floor(10 * t + 1e-6)) for t in times]
    nearest = [int(np.argmin([np.abs(f.astype(int) - s.astype(int)).mean() for s in source])) for f in frames]
    assert nearest == picked


def test_qwen_patches_match_the_image_processor():
    from transformers import Qwen2VLImageProcessor

    from stc.audit.inputs import qwen_patches

    image = torch.rand(3, 56, 84)
    processor = Qwen2VLImageProcessor(do_resize=False, do_rescale=False, do_normalize=False, patch_size=14,
                                      temporal_patch_size=2, merge_size=2)
    expected = processor(images=[image], return_tensors="pt")
    got = qwen_patches(image[None], 14, 2, 2)
    assert expected["image_grid_thw"].tolist() == [[1, 4, 6]]
    torch.testing.assert_close(got, expected["pixel_values"].to(got.dtype), rtol=0, atol=1e-6)


def test_qwen2_vl_tower_runs_through_the_audit(tmp_path, clip_file):
    from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLVisionConfig
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VisionTransformerPretrainedModel

    torch.manual_seed(0)
    config = Qwen2VLVisionConfig(depth=2, embed_dim=32, hidden_size=24, num_heads=4, mlp_ratio=2, patch_size=4,
                                 temporal_patch_size=2, spatial_merge_size=2, in_channels=3)
    Qwen2VisionTransformerPretrainedModel(config).save_pretrained(tmp_path / "qwen")
    out = tmp_path / "out"
    assert main([f"model={tmp_path / 'qwen'}", f"video={clip_file}", "fps=2", "size=16", f"out={out}",
                 "stc.cache_interval=3", "chunk=4"]) == 0
    data = json.loads((out / "audit.json").read_text())
    assert [f["reference"] for f in data["frames"]] == [i % 3 == 0 for i in range(6)]
    assert data["tokens_per_frame"] == 16


@pytest.mark.skipif(os.environ.get("STC_TEST_AUDIT") != "1", reason="opt-in: set STC_TEST_AUDIT=1")
def test_real_dinov2_on_real_clip(tmp_path):
    model, video = CACHE / "dinov2-small-hf", CACHE / "videos" / "bikes.mp4"
    if not (model / "config.json").is_file() or not video.is_file():
        pytest.fail(f"{CACHE}: run scripts/stc_audit_fetch.sh first")
    out = tmp_path / "out"
    assert main([f"model={model}", f"video={video}", "fps=2", "max_frames=6", f"out={out}", "stc.cache_interval=3"]) == 0
    data = json.loads((out / "audit.json").read_text())
    assert data["tokens_per_frame"] == 257 and data["num_layers"] == 12
    assert [f["reference"] for f in data["frames"]] == [True, False, False, True, False, False]
    assert all(f["mean_cosine"] > 0.999 for f in data["frames"] if f["reference"])


def test_sweep_shares_one_full_pass_and_reuses_its_cache_only_for_the_same_inputs(tmp_path, tiny_dinov2, clip_file):
    """`python -m stc.audit.sweep`: one row per combination; its full-pass cache is reused for the same
    inputs (file not rewritten) and recomputed for another resolution with the same frame count."""
    from stc.audit.sweep import main as sweep

    cache = tmp_path / "full.pt"

    def run(size, out):
        argv = [f"model={tiny_dinov2}", f"video={clip_file}", "fps=4", f"size={size}", f"out={tmp_path / out}",
                "stc.cache_interval=2,4", f"full_cache={cache}"]
        assert sweep(argv) == 0
        return json.loads((tmp_path / out / "sweep.json").read_text())

    rows = run(28, "a")
    assert [r["config"]["cache_interval"] for r in rows] == [2, 4]
    stored = torch.load(cache)
    written = cache.stat().st_mtime_ns
    again = run(28, "b")
    drop = lambda r: {key: value for key, value in r.items() if key != "command"}  # noqa: E731 (command names out=)
    assert [drop(r) for r in again] == [drop(r) for r in rows]
    assert cache.stat().st_mtime_ns == written  # same inputs: the cached pass, not rewritten
    smaller = run(14, "c")  # 2x2 patches + CLS instead of 4x4 + CLS, same frame count: recomputed
    assert smaller[0]["tokens_per_frame"] == 5 and rows[0]["tokens_per_frame"] == 17
    assert torch.load(cache)["full"].shape[1] == 5 and stored["full"].shape[1] == 17
