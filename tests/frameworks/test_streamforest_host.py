"""The StreamForest host on a tiny random model (CPU): incremental == re-reading, the released reread
protocol, STC on the host (cacher at r=1 == unpatched, selective path counted), TOKENS-stage placements,
prompt text, settings."""

import pytest
import torch
from omegaconf import OmegaConf

from tests.videos import drifting_video

from frameworks.protocol import Query, StreamingVideoLLM
from frameworks.registry import build_host
from frameworks.streamforest import StreamForestConfig, StreamForestHost, streamforest_sizes
from frameworks.streamforest.loading import build_random
from frameworks.streamforest.prompt import prompt_halves, time_message
from stc import CacherConfig, PrunerConfig, STCConfig

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def loaded():
    return build_random(streamforest_sizes("tiny"), "float32", "cpu", seed=3)


def make(loaded, compression=None, **settings):
    return StreamForestHost(loaded, StreamForestConfig(**{"preset": "tiny", "dtype": "float32", "device": "cpu", **settings}),
                            compression)


def video(count, size=40, seed=0, drift=12.0):
    """uint8 [count, H, W, 3]: tests/videos.py `drifting_video`."""
    return drifting_video(count, size, size, seed, drift)


def stamps(first, count):
    return [float(t) for t in range(first, first + count)]


QUERY = Query(prompt="What happens?", answer_prefix="Best option: (", max_new_tokens=3)


def test_incremental_chunks_equal_reingesting_the_whole_prefix(loaded):
    frames = video(17)
    streamed = make(loaded, vit_batch=2)
    streamed.ingest(frames[:3], stamps(0, 3))
    streamed.ingest(frames[3:8], stamps(3, 5))
    early = streamed.answer(QUERY)                    # answering does not change the memory
    streamed.ingest(frames[8:], stamps(8, 9))
    whole = make(loaded)
    whole.ingest(frames, stamps(0, 17))
    assert streamed.memory.consolidations > 0          # the stream is long enough to consolidate events
    assert streamed.memory.counts() == whole.memory.counts()
    torch.testing.assert_close(streamed.memory.tokens(), whole.memory.tokens(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(streamed.answer_logits(QUERY), whole.answer_logits(QUERY), rtol=1e-4, atol=1e-4)
    assert streamed.answer(QUERY) == whole.answer(QUERY)
    assert isinstance(early, str)
    t = streamed.timings
    assert t.frames == 17 and t.extra["frames_encoded"] == 17 and t.extra["answers"] == 2
    assert t.extra["llm_visual_tokens"] == whole.memory.tokens().shape[0] <= whole.memory_settings.token_bound()


def test_reread_protocol_rebuilds_the_memory_per_question_and_matches_before_consolidation(loaded):
    frames = video(9, seed=1)
    reread = make(loaded, protocol="reread")
    assert not reread.supports_incremental
    reread.ingest(frames, stamps(0, 9))
    incremental = make(loaded)
    incremental.ingest(frames, stamps(0, 9))
    logits = reread.answer_logits(QUERY)
    assert incremental.memory.consolidations == 0 and reread.memory.consolidations == 0
    assert len(incremental.memory.events) >= 1
    torch.testing.assert_close(reread.memory.tokens(), incremental.memory.tokens(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, incremental.answer_logits(QUERY), rtol=1e-4, atol=1e-4)
    reread.answer(QUERY)
    assert reread.timings.extra["frames_encoded"] == 18       # every question re-encodes frames 0..t


def test_reread_thins_to_max_frames_and_the_time_message_follows(loaded):
    host = make(loaded, protocol="reread", max_frames=4)
    host.ingest(video(9, seed=2), stamps(0, 9))
    tokens, seen = host.memory_tokens()
    assert seen == [0.0, 3.0, 5.0, 8.0] and host.memory.frames_seen == 4


def test_cacher_at_full_update_ratio_equals_the_unpatched_host_and_runs_the_selective_path(loaded):
    frames = video(6, seed=4)
    plain = make(loaded)
    plain.ingest(frames, stamps(0, 6))
    cached = make(loaded, STCConfig(cacher=CacherConfig(update_ratio=1.0, cache_interval=2)))
    cached.ingest(frames, stamps(0, 6))
    timings = cached.timings
    assert (timings.vit_reference_frames, timings.vit_selective_frames) == (3, 3)
    torch.testing.assert_close(cached.memory.tokens(), plain.memory.tokens(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(cached.answer_logits(QUERY), plain.answer_logits(QUERY), rtol=1e-4, atol=1e-4)
    cached.close()


def test_cacher_reuse_changes_selective_frames_and_close_restores_the_tower(loaded):
    frames = video(4, seed=5)
    layers = loaded.model.vision_tower.encoder.layers
    original = [type(layer) for layer in layers]
    host = make(loaded, {"cacher": {"update_ratio": 0.25, "cache_interval": 2}}, vit_batch=1)
    features = host.frame_features(frames[:2])
    host.close()
    assert [type(layer) for layer in layers] == original
    full = make(loaded).frame_features(frames[:2])
    torch.testing.assert_close(features[0], full[0])                        # reference frame: exact
    assert not torch.allclose(features[1], full[1], atol=1e-5)              # selective frame: reused tokens


def test_tokens_methods_before_the_memory_shrink_every_frame(loaded):
    host = make(loaded, STCConfig(pruner=PrunerConfig(tokens_per_frame=10)))
    host.ingest(video(12, seed=6), stamps(0, 12))
    counts = host.memory.counts()
    assert counts["now_tokens"] == 10 and counts["short_tokens"] == 10 * counts["short_frames"]
    assert all(event.tokens.shape[1] == 8 for event in host.memory.events)    # min(long_tokens 8, 10)
    t = host.timings
    assert t.visual_tokens_in == 12 * 81 and t.pruner_ms > 0
    assert host.memory.tokens().shape[0] <= host.memory_settings.token_bound(10)


def test_cacher_and_pruner_before_the_memory_give_the_same_memory_at_any_chunking(loaded):
    """The optimised path (STC-Cacher N=3 + pruner before the memory, several frames per tower call,
    ingest calls not aligned to N) equals one frame per call: same memory tokens, same answer logits."""
    frames = video(11, seed=4)
    stc = STCConfig(cacher=CacherConfig(update_ratio=0.25, cache_interval=3), pruner=PrunerConfig(tokens_per_frame=10))
    single = make(loaded, stc, vit_batch=1)  # one host per tower at a time: attaching twice is refused
    for i in range(11):
        single.ingest(frames[i:i + 1], stamps(i, 1))
    single_tokens, single_counts, single_logits = single.memory.tokens(), single.memory.counts(), single.answer_logits(QUERY)
    single.close()
    chunked = make(loaded, stc, vit_batch=4)
    for first, count in ((0, 2), (2, 5), (7, 4)):
        chunked.ingest(frames[first:first + count], stamps(first, count))
    assert chunked.memory.counts() == single_counts
    torch.testing.assert_close(chunked.memory.tokens(), single_tokens, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunked.answer_logits(QUERY), single_logits, rtol=1e-4, atol=1e-4)
    chunked.close()


def test_tokens_methods_before_the_llm_prune_every_memory_frame(loaded):
    host = make(loaded, STCConfig(pruner=PrunerConfig(tokens_per_frame=5)), pruner_placement="before_llm")
    host.ingest(video(12, seed=6), stamps(0, 12))
    memory = host.memory
    frames_out = sum(e.frames for e in memory.events) + len(memory.short) + len(memory.now)
    assert memory.counts()["now_tokens"] == 81                                # the memory itself is unpruned
    host.answer(QUERY)
    assert host.timings.extra["llm_visual_tokens"] == 5 * frames_out
    with pytest.raises(ValueError, match="tokens_per_frame"):                 # events hold 8 tokens per frame
        make(loaded, STCConfig(pruner=PrunerConfig(tokens_per_frame=9)), pruner_placement="before_llm")


def test_prompt_text_is_the_released_chatml_turn_with_the_time_message():
    before, after = prompt_halves("Q?", [0.0, 0.5, 16.04], "short_online_v2", "Best option: (")
    assert before == "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    assert after == ("\n\nThe video contains 3 frames sampled from the past 16.0 seconds ago (0.0s of the entire video) "
                     "up to the present moment (16.0s of the entire video). Q?<|im_end|>\n<|im_start|>assistant\nBest option: (")
    assert prompt_halves("Q?", [1.0], "none")[1] == "\nQ?<|im_end|>\n<|im_start|>assistant\n"
    assert time_message([], "short_online_v2") == ""


def test_factory_from_the_hydra_yaml(loaded):
    settings = OmegaConf.to_container(OmegaConf.load(REPO / "configs/framework/streamforest.yaml"))
    assert StreamForestConfig.from_mapping(settings) == StreamForestConfig()   # the YAML documents the defaults
    settings.update(preset="tiny", dtype="float32", device="cpu", random_weights=True)
    host = build_host("streamforest", settings, {"name": "stc", "cacher": {}, "pruner": {"tokens_per_frame": 20}})
    assert isinstance(host, StreamingVideoLLM) and host.supports_incremental and host.name == "streamforest"
    host.ingest(video(3), stamps(0, 3))
    assert isinstance(host.answer(Query(prompt="q", max_new_tokens=2)), str)
    assert host.timings.vit_selective_frames == 1


@pytest.mark.parametrize("settings,knob", [
    ({"protocl": "x"}, "protocl"), ({"protocol": "offline"}, "protocol"), ({"max_frames": 0}, "max_frames"),
    ({"pruner_placement": "after_llm"}, "pruner_placement"), ({"time_message": "long"}, "time_message"),
    ({"vit_batch": 0}, "vit_batch"),
])
def test_bad_settings_name_the_knob(settings, knob):
    with pytest.raises(ValueError, match=knob):
        StreamForestConfig.from_mapping(settings)


def test_memory_overrides_and_bad_input(loaded):
    host = make(loaded, memory={"quota": 64})
    assert host.memory_settings.quota == 64 and host.memory_settings.short_tokens == 16
    with pytest.raises(ValueError, match="quoat"):
        make(loaded, memory={"quoat": 1})
    with pytest.raises(ValueError, match="uint8"):
        host.ingest(torch.zeros(2, 8, 8, 3))
    with pytest.raises(ValueError, match="timestamps"):
        host.ingest(torch.zeros(2, 8, 8, 3, dtype=torch.uint8), [0.0])
    with pytest.raises(RuntimeError, match="before any frame"):
        host.answer(QUERY)
    with pytest.raises(RuntimeError, match="before any frame"):
        make(loaded, protocol="reread").answer(QUERY)
