"""The ReKV host answers identically with the device block LRU on and off, and with the blocks loaded
inside the answer pre-fill (`load_during_prefill`) or before it (tiny random LLaVA-OV, CPU): questions
whose selections partly overlap, a 3-block LRU that evicts, a reset and a new video, variable size
blocks (DyCoke TTM) and a bounded store whose slots are reused (StreamDyCoke)."""

import pytest
import torch

from frameworks.protocol import Query

QUESTIONS = [
    Query(prompt="what moves on the left?", retrieval_text="what moves on the left?", max_new_tokens=3),
    Query(prompt="is anything red at the end?", retrieval_text="red end", max_new_tokens=3),
    Query(prompt="what moves on the left?", retrieval_text="what moves on the left?", max_new_tokens=3),
    Query(prompt="and then?", retrieval_text="a", max_new_tokens=3),
]


def _pair(rekv, loaded, spec=None, capacity=3, lazy=False, **settings):
    """(LRU host, no-LRU host) on the same model; `lazy`: the LRU host loads inside the answer pre-fill."""
    return (rekv.host(loaded, spec, gpu_cache_blocks=capacity, load_during_prefill=lazy, **settings),
            rekv.host(loaded, spec, gpu_cache_blocks=0, **settings))


def _same_answers(with_cache, without_cache, questions=QUESTIONS):
    selections = []
    for query in questions:
        expected = without_cache.prompt_logits(query)
        assert torch.equal(with_cache.prompt_logits(query), expected), query.prompt
        assert with_cache.answer(query) == without_cache.answer(query), query.prompt
        selections.append([tuple(s.tolist()) for s in with_cache._last_selection])
    return selections


@pytest.mark.parametrize("lazy", [False, True])
def test_lru_on_and_off_give_identical_logits_and_answers_through_evictions_and_a_new_video(rekv, lazy):
    loaded = rekv.loaded(num_hidden_layers=3)
    cached, plain = _pair(rekv, loaded, capacity=3, lazy=lazy, n_local=60, retrieve_size=3)
    assert cached.loader.cache is not None and plain.loader.cache is None
    for host in (cached, plain):
        host.ingest(rekv.video(9))
    selections = _same_answers(cached, plain)
    first, second = set(selections[0][0]), set(selections[1][0])
    assert first != second and first & second  # layer 0: the questions' blocks overlap partly ...
    extra = cached.timings.extra
    # ... served partly from the LRU (repeats, overlaps) and partly from the host, 3 rows evicting
    assert extra["gpu_cache_hits"] > 0 and extra["gpu_cache_misses"] > 3 * 3
    assert extra["retrieval_copies"] > 0 and extra["retrieval_load_ms"] > 0 and extra["retrieval_select_ms"] > 0
    for host in (cached, plain):  # a new video: the same slots with other content
        host.reset()
        host.ingest(rekv.video(7, seed=3))
    assert cached.timings.extra["gpu_cache_hits"] == 0
    _same_answers(cached, plain)
    assert cached.timings.extra["gpu_cache_hits"] > 0


def test_a_cache_keyed_by_slot_alone_would_serve_the_previous_video(rekv):
    """Guards the write stamp in the key: without it the LRU returns blocks of the old video."""
    loaded = rekv.loaded()
    cached, plain = _pair(rekv, loaded, capacity=128, n_local=60, retrieve_size=3)
    stale = rekv.host(loaded, gpu_cache_blocks=128, n_local=60, retrieve_size=3)
    stale.store.block_keys = lambda indices: [(stale.store.slots[i], 0) for i in indices]
    for host in (cached, stale):
        host.loader.cache.clear = lambda: None  # entries survive the reset: only their keys protect them
    for host in (cached, plain, stale):
        host.ingest(rekv.video(8))
        host.prompt_logits(QUESTIONS[0])
        host.reset()
        host.ingest(rekv.video(8, seed=5))
    expected = plain.prompt_logits(QUESTIONS[0])
    assert torch.equal(cached.prompt_logits(QUESTIONS[0]), expected)
    assert not torch.allclose(stale.prompt_logits(QUESTIONS[0]), expected)


@pytest.mark.parametrize("lazy", [False, True])
def test_lru_with_variable_size_blocks_matches_no_lru(rekv, lazy):
    loaded = rekv.loaded()
    cached, plain = _pair(rekv, loaded, {"dycoke_ttm": {}}, capacity=2, lazy=lazy, n_local=10_000, retrieve_size=2,
                          frames_per_chunk=3)
    for host in (cached, plain):
        host.ingest(rekv.video(9))
    assert cached.variable_blocks and len(set(cached.store.lengths)) > 1
    _same_answers(cached, plain)
    assert cached.timings.extra["gpu_cache_hits"] > 0


@pytest.mark.parametrize("lazy", [False, True])
def test_lru_with_a_bounded_store_reusing_slots_matches_no_lru(rekv, lazy):
    loaded = rekv.loaded()
    spec = {"random_drop": {"tokens_per_frame": 5}, "streamdycoke_cache": {"capacity": 20}}
    cached, plain = _pair(rekv, loaded, spec, capacity=3, lazy=lazy, n_local=10_000, retrieve_size=2)
    frames = rekv.video(12)
    for start in (0, 4, 8):  # answer between chunks: the store evicts and rewrites slots in between
        for host in (cached, plain):
            host.ingest(frames[start:start + 4])
        _same_answers(cached, plain, QUESTIONS[:2])
    assert cached.store.num_blocks == 4 and cached.store.next_id == 12
    assert cached.timings.extra["gpu_cache_hits"] > 0
