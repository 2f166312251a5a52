"""Settings: every preset composes to the released sizes; impossible settings give ONE clear error
naming the knob; the Hydra app and the PyYAML composer build the same SpeedConfig."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from speed_benchmark.compose import CONFIG_DIR, available_presets, compose
from speed_benchmark.config import SpeedConfigError, validate
from speed_benchmark.models import resolve_spec

REPO = Path(__file__).resolve().parents[2]
EXPECTED = {  # preset -> (vision tokens per call, frame px, ViT width, ViT layers, LLM width)
    "llava_ov_7b": (729, 384, 1152, 26, 3584),
    "llava_ov_0_5b": (729, 384, 1152, 26, 896),
    "streamforest_7b": (729, 384, 1152, 26, 3584),
    "dispider": (257, 224, 1024, 24, 1536),
    "livecc_7b": (1024, 448, 1280, 32, 3584),
    "tiny": (81, 63, 64, 3, 64),
}


def test_presets_listed():
    assert set(available_presets()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_sizes_by_config_arithmetic(name):
    cfg = compose(name, out_dir="unused")
    validate(cfg, cuda_available=True)
    spec = resolve_spec(cfg.preset)
    v = spec.vision_config
    width = getattr(v, "embed_dim", None) or v.hidden_size
    layers = getattr(v, "depth", None) or v.num_hidden_layers
    assert (spec.vit_tokens, spec.frame_size, width, layers, spec.text_config.hidden_size) == EXPECTED[name]
    assert cfg.stc.tokens_per_frame <= cfg.preset.llm_tokens_per_frame


def _cfg(*overrides):
    return compose("tiny", list(overrides), out_dir="unused")


@pytest.mark.parametrize("overrides, knob", [
    (["frames=0"], "frames"),
    (["stc.update_ratio=0"], "stc.update_ratio"),
    (["stc.update_ratio=1.5"], "stc.update_ratio"),
    (["stc.tokens_per_frame=26"], "stc.tokens_per_frame"),
    (["stc.cache_interval=0"], "stc.cache_interval"),
    (["vit.intervals=[2,0]"], "vit.intervals"),
    (["multistream.streams=[0]"], "multistream.streams"),
    (["prefill.frames_per_chunk=[0]"], "prefill.frames_per_chunk"),
    (["repeats=0"], "repeats"),
    (["model.dtype=int8"], "model.dtype"),
    (["device=tpu"], "device"),
    (["cpu_threads=-1"], "cpu_threads"),
    (["vit.modes=[eager,graph+fast]"], "vit.modes"),
    (["e2e.modes=[fast]"], "e2e.modes"),
    (["e2e.variants=[baseline,tome]"], "e2e.variants"),
    (["e2e.long_variants=[tome]"], "e2e.long_variants"),
    (["e2e.intervals=[0]"], "e2e.intervals"),
    (["e2e.repeats=-1"], "e2e.repeats"),
    (["e2e.long_frames=-1"], "e2e.long_frames"),
    (["e2e.max_new_tokens=0"], "e2e.max_new_tokens"),
    (["stc.autotune=true"], "stc.autotune"),  # nothing fused to tune
])
def test_impossible_settings_name_the_knob(overrides, knob):
    with pytest.raises(SpeedConfigError, match=rf"{knob}="):
        validate(_cfg(*overrides), cuda_available=False)


def test_cuda_without_gpu_is_one_error():
    with pytest.raises(SpeedConfigError, match="CUDA was requested"):
        validate(_cfg("device=cuda"), cuda_available=False)
    validate(_cfg("device=cuda"), cuda_available=True)  # fine where a GPU exists


def test_autotune_needs_cuda_and_fused_layers():
    with pytest.raises(SpeedConfigError, match="stc.autotune=True: tunes the fused layers only"):
        validate(_cfg("stc.autotune=true", "device=cpu"), cuda_available=True)
    with pytest.raises(SpeedConfigError, match="stc.autotune=True: Inductor GEMM autotuning needs a CUDA device"):
        validate(_cfg("stc.autotune=true", "vit.modes=[eager,graph+fused]", "device=cpu"), cuda_available=True)
    with pytest.raises(SpeedConfigError, match="needs a CUDA device"):
        validate(_cfg("stc.autotune=true", "stc.fused=true"), cuda_available=False)
    validate(_cfg("stc.autotune=true", "stc.fused=true", "device=cuda"), cuda_available=True)


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(SpeedConfigError, match="llava_ov_7b"):
        compose("llava_ov_13b")


def test_unknown_key_is_named():
    with pytest.raises(SpeedConfigError, match="stc.updat_ratio"):
        _cfg("stc.updat_ratio=0.3")


def test_unknown_model_size_name_is_named():
    with pytest.raises(SpeedConfigError, match="preset.model_config='llava_ov_9b'"):
        resolve_spec(_cfg("preset.model_config=llava_ov_9b").preset)


def test_hydra_and_plain_composer_agree():
    pytest.importorskip("hydra")
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from speed_benchmark.config import from_mapping, register_schemas

    register_schemas()
    overrides = ["frames=32", "stc.cache_interval=2", "vit.intervals=[4]"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        dcfg = hydra_compose(config_name="speed", overrides=["preset=llava_ov_7b", "out_dir=x", *overrides])
    via_hydra = from_mapping(OmegaConf.to_container(dcfg, resolve=True))
    plain = compose("llava_ov_7b", overrides, out_dir="x")
    assert dataclasses.asdict(via_hydra) == dataclasses.asdict(plain)
    assert plain.frames == 32 and plain.preset.llm_tokens_per_frame == 196 and plain.stc.tokens_per_frame == 64


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "speed_benchmark", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_cli_bad_preset_and_bad_k_fail_clearly():
    pytest.importorskip("hydra")
    bad = _cli("preset=nope")
    assert bad.returncode != 0 and "preset/nope" in bad.stderr and "llava_ov_7b" in bad.stderr
    too_many = _cli("preset=tiny", "stc.tokens_per_frame=40", "out_dir=/tmp/unused-speed")
    assert too_many.returncode != 0
    assert "stc.tokens_per_frame=40" in too_many.stderr and "Traceback" not in too_many.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cli_cuda_without_gpu():
    out = _cli("preset=tiny", "device=cuda", "out_dir=/tmp/unused-speed")
    assert out.returncode != 0 and "CUDA was requested" in out.stderr


def test_cli_user_errors_are_one_line_and_exit_2():
    pytest.importorskip("hydra")
    autotune = _cli("preset=tiny", "device=cpu", "stc.autotune=true", "stc.fused=true", "out_dir=/tmp/unused-speed")
    assert autotune.returncode == 2, autotune.stderr[-2000:]
    assert autotune.stderr.strip().count("\n") == 0
    assert "stc.autotune" in autotune.stderr and "CUDA" in autotune.stderr
    modes = _cli("preset=tiny", "device=cpu", "vit.modes=[eager,warp]", "out_dir=/tmp/unused-speed")
    assert modes.returncode == 2 and modes.stderr.strip().count("\n") == 0 and "vit.modes" in modes.stderr
