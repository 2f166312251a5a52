"""Loading StreamForest from a folder in the released LLaVA-Qwen layout: round trip with the same logits,
sharded checkpoints, skipped tensors, and one error naming the keys of an unknown layout."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from frameworks.protocol import Query
from frameworks.registry import build_host
from frameworks.streamforest import StreamForestConfig, StreamForestHost, streamforest_sizes
from frameworks.streamforest.loading import build_random, load_streamforest, save_released_layout
from frameworks.streamforest.model import TINY_MEMORY
from tests.tokenizers_offline import save_byte_level_tokenizer

QUERY = Query(prompt="What is shown?", max_new_tokens=3)


def _frames(count=5):
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (count, 40, 40, 3), generator=generator, dtype=torch.uint8)


@pytest.fixture(scope="module")
def original():
    return build_random(streamforest_sizes("tiny"), "float32", "cpu", seed=7)


@pytest.fixture
def checkpoint(original, tmp_path):
    vision = original.model.sizes.vision.to_dict()
    save_released_layout(original.model, tmp_path, {"vision_config": {k: vision[k] for k in (
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size", "patch_size",
        "hidden_act", "layer_norm_eps", "vision_use_head")}})
    save_byte_level_tokenizer(tmp_path)
    return tmp_path


def _host(loaded):
    return StreamForestHost(loaded, StreamForestConfig(preset="tiny", dtype="float32", device="cpu"))


def test_released_names_round_trip_with_the_same_logits(original, checkpoint):
    names = set(load_file(str(checkpoint / "model.safetensors")))
    for released in ("model.vision_tower.vision_tower.vision_model.encoder.layers.2.self_attn.q_proj.weight",
                     "model.vision_tower.vision_tower.vision_model.embeddings.patch_embedding.weight",
                     "model.mm_projector.mlp.0.weight", "model.mm_projector.mlp.2.bias",
                     "model.embed_tokens.weight", "model.layers.1.mlp.down_proj.weight", "model.norm.weight",
                     "lm_head.weight"):
        assert released in names, released
    # a loaded checkpoint gets the released memory constants; the tiny tower needs the tiny ones
    host = build_host("streamforest", {"model_path": str(checkpoint), "dtype": "float32", "device": "cpu",
                                       "memory": vars(TINY_MEMORY)})
    reloaded = host.model.state_dict()
    for name, tensor in original.model.state_dict().items():
        assert torch.equal(reloaded[name], tensor), name
    reference = _host(original)
    for each in (host, reference):
        each.ingest(_frames(), [0.0, 1.0, 2.0, 3.0, 4.0])
    # different text codecs (real tokenizer vs byte fallback) map the same prompt to the same byte ids
    # except the chat markers, so compare on the visual part: identical memory, and logits of one codec
    torch.testing.assert_close(host.memory.tokens(), reference.memory.tokens(), rtol=0, atol=0)
    reference.codec = host.codec
    torch.testing.assert_close(host.answer_logits(QUERY), reference.answer_logits(QUERY), rtol=0, atol=0)
    assert host.answer(QUERY) == reference.answer(QUERY)


def test_sharded_checkpoint_with_index_and_skipped_tensors(original, checkpoint):
    state = load_file(str(checkpoint / "model.safetensors"))
    (checkpoint / "model.safetensors").unlink()
    names = sorted(state)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    extra = {"model.image_newline": torch.zeros(64),   # tensors the host does not use are skipped by name
             "model.vision_tower.vision_tower.vision_model.encoder.layers.3.mlp.fc1.weight": torch.zeros(128, 64),
             "model.vision_tower.vision_tower.vision_model.head.probe": torch.zeros(1, 1, 64)}
    for index, (file, keys) in enumerate(shards.items()):
        tensors = {k: state[k] for k in keys}
        tensors.update(extra if index else {})
        save_file(tensors, str(checkpoint / file))
    weight_map = {k: f for f, keys in shards.items() for k in keys}
    (checkpoint / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    loaded, sizes = load_streamforest(checkpoint, "float32", "cpu")
    assert sizes.vision.num_hidden_layers == 3
    for name, tensor in original.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name


def test_unknown_layout_is_one_error_naming_missing_and_unexpected_keys(checkpoint):
    state = load_file(str(checkpoint / "model.safetensors"))
    state["model.multi_modal_projector.linear_1.weight"] = state.pop("model.mm_projector.mlp.0.weight")
    save_file(state, str(checkpoint / "model.safetensors"))
    with pytest.raises(ValueError) as error:
        load_streamforest(checkpoint, "float32", "cpu")
    message = str(error.value)
    assert "missing keys [projector.mlp.0.weight]" in message
    assert "unexpected keys [model.multi_modal_projector.linear_1.weight]" in message


def test_wrong_shapes_and_missing_files_are_clear_errors(checkpoint, tmp_path):
    config = json.loads((checkpoint / "config.json").read_text())
    config["intermediate_size"] = 96
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="shapes do not match.*mlp"):
        load_streamforest(checkpoint, "float32", "cpu")
    with pytest.raises(FileNotFoundError, match="model_path="):
        build_host("streamforest", {"model_path": str(tmp_path / "nowhere"), "device": "cpu"})
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="safetensors"):
        load_streamforest(tmp_path / "empty", "float32", "cpu")
