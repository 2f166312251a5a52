"""Loading (local checkpoint round trip, clear errors), the registry factory, settings, decoding rules."""

import pytest
import torch
from omegaconf import OmegaConf

from frameworks.protocol import Query, StreamingVideoLLM
from frameworks.registry import build_host
from frameworks.rekv import ReKVConfig
from stc import PrunerConfig, STCConfig
from tests.tokenizers_offline import save_byte_level_tokenizer

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_save_pretrained_then_load_through_the_host_factory(rekv, tmp_path):
    loaded = rekv.loaded(seed=5)
    loaded.model.save_pretrained(tmp_path)
    tokenizer = save_byte_level_tokenizer(tmp_path)
    host = build_host("rekv", {"name": "rekv", "model_path": str(tmp_path), "dtype": "float32", "device": "cpu",
                               "n_local": 10_000})
    reloaded = host.model.state_dict()
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(reloaded[name], tensor), name
    assert host.codec.encode("<|im_end|>") == [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    assert set(host.codec.eos_token_ids) >= {tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.eos_token_id}
    frames = rekv.video(3)
    host.ingest(frames)
    text = host.answer(Query(prompt="what?", max_new_tokens=3))
    assert isinstance(text, str)
    assert host.timings.frames == 3 and host.timings.extra["answers"] == 1


def test_missing_checkpoint_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_path="):
        build_host("rekv", {"model_path": str(tmp_path / "nowhere"), "device": "cpu"})


def test_checkpoint_without_tokenizer_is_a_clear_error(rekv, tmp_path):
    rekv.loaded().model.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        build_host("rekv", {"model_path": str(tmp_path), "dtype": "float32", "device": "cpu"})


def test_factory_from_plain_dict_and_from_the_hydra_yaml(rekv):
    settings = OmegaConf.to_container(OmegaConf.load(REPO / "configs/framework/rekv.yaml"))
    assert settings["name"] == "rekv"
    parsed = ReKVConfig.from_mapping(settings)
    assert parsed == ReKVConfig()  # the YAML documents exactly the defaults
    settings.update(preset="tiny", dtype="float32", device="cpu", n_local=100)
    host = build_host("rekv", settings, STCConfig(pruner=PrunerConfig(tokens_per_frame=4)))
    assert isinstance(host, StreamingVideoLLM) and host.supports_incremental
    host.reset()
    host.ingest(rekv.video(2), [0.0, 1.0])
    assert host.timings.visual_tokens_kept == 8 and host.timings.pruner_ms > 0
    assert isinstance(host.answer(Query(prompt="q", max_new_tokens=2)), str)


@pytest.mark.parametrize("settings,knob", [
    ({"n_lcoal": 5}, "n_lcoal"), ({"n_local": 0}, "n_local"), ({"frames_per_chunk": 0}, "frames_per_chunk"),
    ({"retrieve_size": 0}, "retrieve_size"), ({"question_template": "no placeholder"}, "question_template"),
])
def test_bad_settings_name_the_knob(settings, knob):
    with pytest.raises(ValueError, match=knob):
        ReKVConfig.from_mapping(settings)


def test_window_smaller_than_a_chunk_and_oversized_pruner_budget_are_refused(rekv):
    loaded = rekv.loaded()
    with pytest.raises(ValueError, match="n_local"):
        rekv.host(loaded, n_local=30, frames_per_chunk=2)
    with pytest.raises(ValueError, match="tokens_per_frame"):
        rekv.host(loaded, stc=STCConfig(pruner=PrunerConfig(tokens_per_frame=26)))


def test_bad_frames_are_refused_with_the_reason(rekv):
    host = rekv.host()
    with pytest.raises(ValueError, match="uint8"):
        host.ingest(torch.zeros(2, 8, 8, 3))
    with pytest.raises(ValueError, match="timestamps"):
        host.ingest(torch.zeros(2, 8, 8, 3, dtype=torch.uint8), [0.0])


def test_first_step_eos_is_replaced_by_next_best(rekv):
    host = rekv.host()
    eos = set(host.codec.eos_token_ids)
    logits = torch.zeros(300)
    logits[sorted(eos)[0]] = 10.0
    logits[42] = 5.0
    assert host._pick(logits, eos, first=True) == 42
    assert host._pick(logits, eos, first=False) == sorted(eos)[0]
    strict = rekv.host(forbid_eos_first=False)
    assert strict._pick(logits, eos, first=True) == sorted(eos)[0]


def test_chat_template_and_raw_prompts(rekv):
    host = rekv.host()
    codec = host.codec
    templated = host._prompt_ids(Query(prompt="Q?", answer_prefix="Best option: ("))
    assert templated == codec.encode("\nQ?<|im_end|><|im_start|>assistant\nBest option: (")
    raw = host._prompt_ids(Query(prompt="Q? {x}", use_chat_template=False, answer_prefix="A"))
    assert raw == codec.encode("Q? {x}A")
