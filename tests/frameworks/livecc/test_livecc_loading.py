"""Loading (local checkpoint round trip through the host factory, clear errors), the Hydra YAML, settings."""

import pytest
import torch
from omegaconf import OmegaConf

from frameworks.livecc import LiveCCConfig
from frameworks.protocol import Query, StreamingVideoLLM
from frameworks.registry import build_host
from tests.tokenizers_offline import save_byte_level_tokenizer

REPO = __import__("pathlib").Path(__file__).resolve().parents[3]
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|video_pad|>"]


def test_save_pretrained_then_load_through_the_host_factory(lc, tmp_path):
    loaded = lc.loaded(seed=7)
    loaded.model.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text('{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}')
    tokenizer = save_byte_level_tokenizer(tmp_path, SPECIALS)
    host = build_host("livecc", {"name": "livecc", "model_path": str(tmp_path), "dtype": "float32", "device": "cpu",
                                 "min_pixels": 784, "max_pixels": 10_000, "mode": "streaming"})
    reloaded = host.model.state_dict()
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(reloaded[name], tensor), name
    assert host.patch_spec.mean == (0.5, 0.5, 0.5) and host.patch_spec.std == (0.25, 0.25, 0.25)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert host.codec.encode("<|im_end|>") == [im_end] and im_end in host.codec.eos_token_ids
    assert host.choice_ids[1] == tokenizer.convert_tokens_to_ids("s")  # "\nYes" -> last token "s"
    host.ingest(lc.video(7))
    assert host.answer(Query(prompt="Yes or no?")) in LiveCCConfig.__dataclass_fields__["answer_choices"].default
    assert host.timings.frames == 7 and host.timings.extra["turns"] == 1


def test_missing_checkpoint_and_tokenizer_are_clear_errors(lc, tmp_path):
    with pytest.raises(FileNotFoundError, match="model_path="):
        build_host("livecc", {"model_path": str(tmp_path / "nowhere"), "device": "cpu"})
    lc.loaded().model.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        build_host("livecc", {"model_path": str(tmp_path), "dtype": "float32", "device": "cpu"})


def test_random_weights_must_be_asked_for():
    with pytest.raises(ValueError, match="random_weights"):
        build_host("livecc", {"preset": "tiny", "device": "cpu"})


def test_factory_from_the_hydra_yaml(lc):
    settings = OmegaConf.to_container(OmegaConf.load(REPO / "configs/framework/livecc.yaml"))
    assert settings["name"] == "livecc" and settings["random_weights"] is False and settings["model_path"] is None
    settings["random_weights"] = True
    assert LiveCCConfig.from_mapping(settings) == LiveCCConfig(random_weights=True)  # the YAML documents the defaults
    settings.update(preset="tiny", dtype="float32", device="cpu", min_pixels=784, max_pixels=10_000, mode="streaming")
    host = build_host("livecc", settings, {"name": "stc_pruner", "pruner": {"tokens_per_frame": 2}})
    assert isinstance(host, StreamingVideoLLM) and host.supports_incremental
    host.ingest(lc.video(6), [0.5 * i for i in range(6)])
    assert host.timings.visual_tokens_kept == 3 * 2
    assert host.answer(Query(prompt="q")) in settings["answer_choices"]


@pytest.mark.parametrize("settings,knob", [
    ({"mdoe": "clip"}, "mdoe"), ({"mode": "live"}, "mode"), ({"answer_mode": "x"}, "answer_mode"),
    ({"first_turn_frames": 5}, "first_turn_frames"), ({"turn_frames": 0}, "turn_frames"),
    ({"max_pixels": 10}, "max_pixels"), ({"mrope": "4x"}, "mrope"), ({"answer_choices": ["A"]}, "answer_choices"),
])
def test_bad_settings_name_the_knob(settings, knob):
    with pytest.raises(ValueError, match=knob):
        LiveCCConfig.from_mapping({"random_weights": True, **settings})


def test_bad_frames_are_refused_with_the_reason(lc, shared_loaded):
    host = lc.host(shared_loaded)
    with pytest.raises(ValueError, match="uint8"):
        host.ingest(torch.zeros(2, 8, 8, 3))
    with pytest.raises(ValueError, match="timestamps"):
        host.ingest(torch.zeros(2, 8, 8, 3, dtype=torch.uint8), [0.0])
    with pytest.raises(ValueError, match="before any frame"):
        host.answer(Query(prompt="q"))
