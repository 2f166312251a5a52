"""The device LRU of retrieved blocks (block_cache.py) and the loader that serves selections through it
(answer_loading.py), on CPU: hand-computed LRU orders, and loaded blocks equal to the plain `gather`
through hits, misses, in-plan row reuse, store evictions, slot reuse and a new video."""

import pytest
import torch

from frameworks.rekv.answer_loading import BlockLoader
from frameworks.rekv.block_cache import BlockCache
from frameworks.rekv.block_store import BlockStore
from frameworks.rekv.config import ReKVConfig

LAYERS, KV_HEADS, DIM, BLOCK = 2, 2, 4, 3


def test_lru_hits_misses_eviction_order_by_hand():
    cache = BlockCache(num_layers=2, capacity=3, row_shape=(1,), dtype=torch.float32, device=torch.device("cpu"))
    plan = cache.plan(0, ["a", "b"])
    assert (plan.hits, plan.misses, plan.fills) == ([], [0, 1], [(0, 0), (1, 1)])
    # b hits row 1; c takes the last free row 2; d evicts the least recently used a (row 0)
    plan = cache.plan(0, ["b", "c", "d"])
    assert (plan.hits, plan.misses, plan.fills) == ([(0, 1)], [1, 2], [(1, 2), (2, 0)])
    assert cache.cached_keys(0) == ["b", "c", "d"]
    # d hits row 0 and becomes most recent; a (a miss again: it was evicted) evicts b (row 1)
    plan = cache.plan(0, ["a", "d"])
    assert (plan.hits, plan.misses, plan.fills) == ([(1, 0)], [0], [(0, 1)])
    assert cache.cached_keys(0) == ["c", "d", "a"]
    # four misses into three rows: e evicts c (2), f evicts d (0), g evicts a (1), h evicts e (row 2 again)
    plan = cache.plan(0, ["e", "f", "g", "h"])
    assert (plan.hits, plan.misses, plan.fills) == ([], [0, 1, 2, 3], [(1, 0), (2, 1), (3, 2)])
    assert cache.cached_keys(0) == ["f", "g", "h"]
    # a hit whose row is refilled in the same plan (reads must precede fills): f hit row 0, then
    # x evicts g (1), y evicts h (2), z evicts f itself (0)
    plan = cache.plan(0, ["f", "x", "y", "z"])
    assert (plan.hits, plan.misses, plan.fills) == ([(0, 0)], [1, 2, 3], [(1, 1), (2, 2), (3, 0)])
    # layers are independent; counters add up; clear forgets everything
    assert cache.plan(1, ["a"]).fills == [(0, 0)] and cache.cached_keys(1) == ["a"]
    assert (cache.hits, cache.misses) == (3, 13)
    cache.clear()
    assert cache.cached_keys(0) == [] and cache.plan(0, ["f"]).misses == [0]


def test_store_keys_change_when_a_slot_is_evicted_and_rewritten_or_cleared():
    store = _store(page_blocks=2)
    _write(store, 4, torch.Generator().manual_seed(0))
    keys = store.block_keys([0, 1, 2, 3])
    assert keys == [(0, 0), (1, 1), (2, 2), (3, 3)]
    store.evict([1])
    _write(store, 1, torch.Generator().manual_seed(1))  # reuses slot 1 with new content
    assert store.slots == [0, 2, 3, 1] and store.block_keys([3]) == [(1, 4)]
    store.clear()
    _write(store, 1, torch.Generator().manual_seed(2))
    assert store.block_keys([0]) == [(0, 5)]  # slot 0 again, a new stamp


def test_copy_blocks_issues_one_copy_per_run_of_consecutive_slots_and_positions():
    store = _store(page_blocks=3)
    _write(store, 8, torch.Generator().manual_seed(3))
    out = torch.empty(5, 2, KV_HEADS, BLOCK, DIM)
    # slots 0,1,2 | 3 (page border) | 5 -> 3 copies; positions 0..4 in order
    assert store.copy_blocks(0, [0, 1, 2, 3, 5], out, range(5)) == 3
    # the same slots to non-consecutive positions: the runs break where positions jump
    assert store.copy_blocks(0, [0, 1, 2], out, [0, 2, 3]) == 2
    keys, values = store.gather(0, torch.tensor([0, 1, 2]))
    assert torch.equal(out[[0, 2, 3]].permute(1, 2, 0, 3, 4).reshape(2, KV_HEADS, -1, DIM)[0], keys)


def test_gather_blocks_moves_every_layers_blocks_with_one_gather_per_page():
    """`gather_blocks` (all layers at once, rows grouped by page) fills exactly what per-layer
    `copy_blocks` fills, at positions that are not in order and across evicted/reused slots."""
    generator = torch.Generator().manual_seed(6)
    store = _store(page_blocks=3)
    _write(store, 8, generator)
    store.evict([store.ids[1]])
    _write(store, 2, generator)                     # slot 1 reused: live blocks no longer slot-ordered
    wanted = [[(0, 2), (4, 0), (8, 1)], [(3, 1), (2, 0)]]   # (block, row); layer 1 fills 2 of 3 rows
    out = torch.full((LAYERS, 3, 2, KV_HEADS, BLOCK, DIM), float("nan"))
    expected = out.clone()
    for layer, pairs in enumerate(wanted):
        for block, row in pairs:
            store.copy_blocks(layer, [block], expected[layer], [row])
    pages = {store.slots[block] // 3 for pairs in wanted for block, _ in pairs}
    assert store.gather_blocks(wanted, out) == len(pages)
    assert torch.equal(out[:, :3].nan_to_num(7.0), expected.nan_to_num(7.0))  # untouched rows stay untouched
    assert store.gather_blocks([[], []], out) == 0


@pytest.mark.parametrize("gather", [True, False])
@pytest.mark.parametrize("capacity", [0, 2, 3, 128])
def test_loader_serves_exactly_what_gather_returns_through_hits_evictions_and_slot_reuse(capacity, gather):
    generator = torch.Generator().manual_seed(4)
    store = _store(page_blocks=3)
    loader = BlockLoader(store, cache_blocks=capacity, gather=gather)
    _write(store, 7, generator)
    selections = [
        [[0, 2, 3], [1, 2, 6]],
        [[2, 3, 5], [0, 1, 6]],     # partial overlap with the first question
        [[0, 2, 3], [1, 2, 6]],     # the first question again
        [[1, 4, 5], [3, 4, 5]],
    ]
    for selection in selections:
        _check(store, loader, selection)
    store.evict([store.ids[2], store.ids[5]])  # two slots freed ...
    _write(store, 3, generator)                # ... and rewritten with new content
    for selection in ([[0, 2, 6], [1, 5, 7]], [[2, 3, 4], [0, 6, 7]]):
        _check(store, loader, selection)
    store.clear()                               # a new video reuses slots 0.. (the loader is not told)
    _write(store, 5, generator)
    _check(store, loader, [[0, 1, 2], [1, 3, 4]])
    if capacity:
        assert loader.cache.hits > 0 and loader.cache.misses > 0
    loader.clear()
    _check(store, loader, [[0, 1, 2], [1, 3, 4]])


def test_loader_with_variable_size_blocks_returns_only_their_tokens():
    generator = torch.Generator().manual_seed(5)
    store = _store(page_blocks=2)
    loader = BlockLoader(store, cache_blocks=2)
    lengths = [3, 1, 2, 3, 1]
    keys = torch.randn(LAYERS, KV_HEADS, sum(lengths), DIM, generator=generator)
    store.write(keys, torch.randn_like(keys), lengths=lengths)
    store.commit(len(lengths))
    for selection in ([[0, 1, 4], [1, 2, 3]], [[1, 3, 4], [0, 1, 2]], [[0, 1, 4], [2, 3, 4]]):
        _check(store, loader, selection)
    assert loader.cache.hits > 0


def test_lazy_loading_issues_layers_ahead_and_an_abandoned_load_still_fills_the_lru():
    generator = torch.Generator().manual_seed(6)
    store = BlockStore(4, KV_HEADS, DIM, BLOCK, torch.float32, torch.device("cpu"), page_blocks=3)
    keys = torch.randn(4, KV_HEADS, 6 * BLOCK, DIM, generator=generator)
    store.write(keys, torch.randn(keys.shape, generator=generator))
    store.commit(6)
    loader = BlockLoader(store, cache_blocks=2)
    selection = [[0, 1, 4], [2, 3, 5], [0, 2, 4], [1, 3, 5]]
    pending = loader.start(selection, ahead=1)
    assert pending.issued == 1
    keys0, _ = pending.layer(0)
    assert pending.issued == 2 and torch.equal(keys0, store.gather(0, torch.tensor([0, 1, 4]))[0])
    # abandoned after layer 0: the LRU already counts layers 1-3 as filled, so the next load must
    # first issue them; otherwise its hits would read rows never written
    _check(store, loader, selection)
    assert loader.cache.hits >= 4 * 2  # every layer's last two blocks are hits the second time


def test_gpu_cache_blocks_setting_is_validated():
    assert ReKVConfig().gpu_cache_blocks == 128 and ReKVConfig(gpu_cache_blocks=0).gpu_cache_blocks == 0
    with pytest.raises(ValueError, match="gpu_cache_blocks=-1"):
        ReKVConfig(gpu_cache_blocks=-1)


def _store(page_blocks):
    return BlockStore(LAYERS, KV_HEADS, DIM, BLOCK, torch.float32, torch.device("cpu"), page_blocks=page_blocks)


def _write(store, count, generator):
    keys = torch.randn(LAYERS, KV_HEADS, count * BLOCK, DIM, generator=generator)
    store.write(keys, torch.randn(keys.shape, generator=generator))
    store.commit(count)


def _check(store, loader, selection):
    pending = loader.start(selection)
    for layer, chosen in enumerate(selection):
        keys, values = pending.layer(layer)
        want_keys, want_values = store.gather(layer, torch.tensor(chosen))
        assert torch.equal(keys, want_keys) and torch.equal(values, want_values), (layer, chosen)


@pytest.mark.parametrize("capacity", [0, 2])
def test_all_layers_at_once_equals_layer_by_layer(capacity):
    """`PendingBlocks.all_layers` (one unstage for every layer) == `layer(l)` stacked, with and without the
    LRU; `AnswerCache.load_all` (one rotation) == `load` per layer."""
    from frameworks.rekv.backends import AnswerCache
    from frameworks.rekv.rope import RotaryTable

    generator = torch.Generator().manual_seed(7)
    store = _store(page_blocks=3)
    _write(store, 7, generator)
    loader = BlockLoader(store, cache_blocks=capacity)
    for selection in ([[0, 2, 5], [1, 2, 6]], [[2, 5, 6], [0, 1, 3]]):
        every = loader.start(selection).all_layers()
        one_by_one = [loader.start(selection).layer(layer) for layer in range(LAYERS)]
        assert torch.equal(every[0], torch.stack([k for k, _ in one_by_one]))
        assert torch.equal(every[1], torch.stack([v for _, v in one_by_one]))

    class _Rotary(torch.nn.Module):
        inv_freq = 1.0 / (10000 ** (torch.arange(0, DIM, 2).float() / DIM))
        attention_scaling = 1.0

    rope = RotaryTable(_Rotary(), torch.float32)
    whole, per_layer = (AnswerCache(LAYERS, KV_HEADS, DIM, 20, torch.float32, torch.device("cpu"), rope) for _ in range(2))
    keys, values = every
    whole.load_all(keys, values)
    for layer in range(LAYERS):
        per_layer.load(layer, keys[layer], values[layer])
    count = keys.shape[2]
    assert torch.equal(whole.keys[:, :, :count], per_layer.keys[:, :, :count])
    assert torch.equal(whole.values[:, :, :count], per_layer.values[:, :, :count])
