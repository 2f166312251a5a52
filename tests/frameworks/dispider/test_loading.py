"""Loading from local folders (released layout round trip, the name map, one clear error), the factory,
settings and the Hydra yaml."""

import pytest
import torch
from omegaconf import OmegaConf

from frameworks.dispider import DispiderSettings
from frameworks.dispider.loading import NAMES, load_dispider, save_dispider
from frameworks.protocol import Query, StreamingVideoLLM
from frameworks.registry import build_host
from tests.tokenizers_offline import byte_level_tokenizer

REPO = __import__("pathlib").Path(__file__).resolve().parents[3]


def _save(dsp, folder, seed=3, compressor_specials=("<ANS>", "<TODO>")):
    loaded = dsp.loaded(seed=seed)
    save_dispider(loaded.model, folder, byte_level_tokenizer(), byte_level_tokenizer(compressor_specials))
    return loaded


def test_released_names_map_onto_ours():
    cases = {
        "model.layers.3.mlp.up_proj.weight": "reaction.model.layers.3.mlp.up_proj.weight",
        "lm_head.weight": "reaction.lm_head.weight",
        "model.clip_projector.2.bias": "clip_projector.2.bias",
        "model.compress_projector.0.weight": "compress_projector.0.weight",
        "model.compressor.model.layers.0.self_attn.q_proj.weight": "compressor.layers.0.self_attn.q_proj.weight",
        "model.compressor.compressor.model.norm.weight": "compressor.norm.weight",  # portable re-export
        "model.compressor.model.mm_projector.mlp.0.weight": "pool_projector.mlp.0.weight",
        "model.compressor.model.vision_tower.vision_tower.vision_model.encoder.layers.1.mlp.fc1.weight":
            "vision_tower.encoder.layers.1.mlp.fc1.weight",
        "model.compressor.silent_head.weight": "silent_head.weight",
        "model.compressor.lm_head.weight": None,  # the compressor's LM head is never used at inference
    }
    for released, ours in cases.items():
        assert NAMES.ours(released) == ours, released
    with pytest.raises(KeyError):
        NAMES.ours("vision.encoder.weight")


def test_save_then_load_through_the_host_factory(dsp, tmp_path):
    loaded = _save(dsp, tmp_path)
    assert (tmp_path / "stream_compressor" / "model.safetensors").is_file()
    host = build_host("dispider", {"model_path": str(tmp_path), "dtype": "float32", "device": "cpu"})
    reloaded = host.model.state_dict()
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(reloaded[name], tensor), name
    assert host.arch.select_layer == -2 and host.arch.vision.image_size == 112
    tokenizer = host.compressor_codec.tokenizer
    assert (host.ans_id, host.todo_id) == tuple(tokenizer.convert_tokens_to_ids(["<ANS>", "<TODO>"]))
    assert host.codec.encode("<|im_end|>")[0] in host.codec.eos_token_ids
    host.ingest(dsp.video(17), dsp.seconds(17))
    assert isinstance(host.answer(Query(prompt="what?", max_new_tokens=2)), str)


def test_missing_weights_are_one_clear_error(dsp, tmp_path):
    from safetensors.torch import load_file, save_file

    _save(dsp, tmp_path)
    side = tmp_path / "stream_compressor" / "model.safetensors"
    weights = load_file(str(side))
    del weights["silent_head.weight"]
    weights["mystery.weight"] = torch.zeros(1)
    save_file(weights, str(side))
    message = r"1 missing \(e\.g\. silent_head\.weight\); 1 unmapped \(e\.g\. model\.safetensors:mystery\.weight\)"
    with pytest.raises(ValueError, match=message):
        load_dispider(tmp_path, "float32", "cpu")


def test_missing_folders_and_tokens_are_clear_errors(dsp, tmp_path):
    with pytest.raises(FileNotFoundError, match="model_path"):
        build_host("dispider", {"model_path": str(tmp_path / "nowhere"), "device": "cpu"})
    _save(dsp, tmp_path / "no_todo", compressor_specials=("<ANS>",))
    with pytest.raises(ValueError, match="<TODO>"):
        load_dispider(tmp_path / "no_todo", "float32", "cpu")
    _save(dsp, tmp_path / "no_side")
    import shutil

    shutil.rmtree(tmp_path / "no_side" / "stream_compressor")
    with pytest.raises(FileNotFoundError, match="stream_compressor"):
        load_dispider(tmp_path / "no_side", "float32", "cpu")


def test_yaml_documents_the_defaults_and_null_model_path_needs_random_weights():
    settings = OmegaConf.to_container(OmegaConf.load(REPO / "configs/framework/dispider.yaml"))
    assert settings["name"] == "dispider" and settings["random_weights"] is False
    with pytest.raises(ValueError, match="model_path"):
        DispiderSettings.from_mapping(settings)
    settings["random_weights"] = True
    assert DispiderSettings.from_mapping(settings) == DispiderSettings(random_weights=True)


@pytest.mark.parametrize("settings,knob", [
    ({"frames_per_clp": 16}, "frames_per_clp"), ({"sampling": "fps"}, "sampling"), ({"grounding": "x"}, "grounding"),
    ({"top_clips": 0}, "top_clips"), ({"tail_min_frames": 17}, "tail_min_frames"),
    ({"reaction_frames": "last"}, "reaction_frames"), ({"preset": "13b"}, "preset"),
])
def test_bad_settings_name_the_knob(settings, knob):
    with pytest.raises(ValueError, match=knob):
        DispiderSettings.from_mapping({"random_weights": True, **settings})


def test_factory_with_random_weights_and_compression(dsp):
    host = build_host("dispider", {"random_weights": True, "preset": "tiny", "dtype": "float32", "device": "cpu"},
                      {"pruner": {"tokens_per_frame": 4}})
    assert isinstance(host, StreamingVideoLLM) and host.supports_incremental
    host.ingest(dsp.video(16), dsp.seconds(16))
    assert host.timings.visual_tokens_in == 16 * 16 and host.timings.visual_tokens_kept == 16 * 4
    with pytest.raises(ValueError, match="tokens_per_frame"):
        build_host("dispider", {"random_weights": True, "preset": "tiny", "device": "cpu", "dtype": "float32"},
                   {"pruner": {"tokens_per_frame": 17}})
