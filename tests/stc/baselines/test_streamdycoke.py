"""StreamDyCoke: sliding-window TTM on planted frames and causality; DP cache eviction order (FIFO, LRR,
DECAY) on planted access patterns; the memory bound over a 10 000-frame stream (cache + block store)."""

import math

import pytest
import torch

from stc.baselines.dp_cache import BoundedDPCache
from stc.compression import CompressionSpec, TokenSide


def method(name, **settings):
    return CompressionSpec.from_mapping({name: settings}).build()[0]


def test_sliding_window_ttm_on_planted_frames():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(5, 8, generator=g)
    f0 = base
    f1 = base.clone(); f1[[1, 3]] = torch.randn(2, 8, generator=g) * 4           # new at 1, 3
    f2 = f1.clone(); f2[3] = f0[3]; f2[4] = torch.randn(8, generator=g) * 4       # 3 matches f0 (buffered) -> dropped
    f3 = f2.clone()                                                               # nothing new -> argmin kept
    f4 = torch.randn(5, 8, generator=g)                                           # t = 4: anchor
    ttm = method("streamdycoke_ttm")
    kept, picked = ttm.compress(torch.stack([f0, f1, f2, f3, f4]), TokenSide())
    assert [p.tolist() for p in picked[:3]] == [[0, 1, 2, 3, 4], [1, 3], [4]]
    assert picked[3].numel() == 1 and picked[4].tolist() == [0, 1, 2, 3, 4]
    assert ttm.stats()["anchors"] == 2 and ttm.tokens_out(196) is None
    torch.testing.assert_close(kept[2], f2[[4]])


def test_sliding_window_only_remembers_window_minus_one_frames():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(3, 6, generator=g), torch.randn(3, 6, generator=g)
    ttm = method("streamdycoke_ttm", window_size=2, anchor_every=100)
    picks = [ttm.select(f).tolist() for f in (a, b, a)]
    assert picks[2] == [0, 1, 2]  # a is no longer buffered (window 2 keeps only b): everything is new


def test_streamdycoke_ttm_is_causal():
    g = torch.Generator().manual_seed(2)
    frames = torch.randn(10, 6, 4, generator=g)
    frames[1:] = frames[:1] + 0.3 * torch.randn(9, 6, 4, generator=g)
    other = frames.clone()
    other[7:] = torch.randn(3, 6, 4, generator=g)
    a, b = method("streamdycoke_ttm"), method("streamdycoke_ttm")
    first, second = [a.select(f) for f in frames], [b.select(f) for f in other]
    assert all(torch.equal(first[t], second[t]) for t in range(7))


# ---- the DP cache ------------------------------------------------------------------------------------
def planted_cache(policy):
    """Capacity 3; entries a, b, c inserted at clocks 1, 2, 3; a restored at clock 4, b at clock 5."""
    cache = BoundedDPCache(3, policy, decay_lambda=0.5)
    for key, attention in (("a", 1.0), ("b", 0.1), ("c", 1.0)):
        cache.tick()
        cache.insert(key, base_attention=attention)
    cache.tick(); cache.touch(["a"])
    cache.tick(); cache.touch(["b"])
    return cache


def test_eviction_order_fifo_lrr_decay_by_hand():
    # FIFO: oldest insertions first: a, b, c
    cache = planted_cache("fifo")
    assert [cache.insert(k) for k in ("x", "y", "z")] == [["a"], ["b"], ["c"]]
    # LRR: least recently restored: c (3), then a (4), then b (5)
    cache = planted_cache("lrr")
    assert cache.insert("x") == ["c"] and cache.insert("y") == ["a"] and cache.insert("z") == ["b"]
    # DECAY at clock 5, lambda 0.5: a = 1.0 e^-0.5 = 0.61, b = 0.1 e^0 = 0.1, c = 1.0 e^-1 = 0.37
    cache = planted_cache("decay")
    priorities = {k: cache.priority(e) for k, e in cache.entries.items()}
    assert priorities == pytest.approx({"a": math.exp(-0.5), "b": 0.1, "c": math.exp(-1.0)})
    assert cache.insert("x") == ["b"]
    assert cache.insert("y") == ["c"]  # then x (1.0, fresh) > a (0.61) > c (0.37): c goes


def test_restore_top_k_pops_highest_priority_and_frees_room():
    cache = planted_cache("decay")
    assert cache.restore_top_k(2) == ["a", "c"] and cache.used == 1 and list(cache.entries) == ["b"]
    with pytest.raises(ValueError, match="exceeds the capacity of 3"):
        cache.insert("big", size=4)


def test_memory_bound_over_a_10000_frame_stream_with_the_block_store():
    """The CONTEXT method drives a real ReKV block store (tiny shapes) through 10 000 frames: stored
    tokens and allocated pages never exceed the bound; the newest frames are the ones kept (FIFO)."""
    from frameworks.rekv.block_store import BlockStore

    store = BlockStore(1, 1, 2, block_tokens=4, dtype=torch.float32, device=torch.device("cpu"), offload=False,
                       page_blocks=8)
    cache = method("streamdycoke_cache", capacity=64, eviction_policy="fifo")  # 16 blocks of 4 tokens
    peak_pages = 0
    for frame in range(10_000):
        ids = [store.next_id]
        evict = cache.store_blocks(ids, [4])
        store.evict(evict)
        keys = torch.full((1, 1, 4, 2), float(frame))
        store.write(keys, keys)
        store.commit(1)
        assert store.num_blocks * 4 <= 64 and cache.cache.used <= 64
        peak_pages = max(peak_pages, len(store.pages))
    assert peak_pages == 2 and store.slot_count == 16
    assert store.ids == list(range(10_000 - 16, 10_000))
    keys, _ = store.gather(0, torch.arange(16))
    assert keys[0, ::4, 0].tolist() == [float(f) for f in range(10_000 - 16, 10_000)]
    stats = cache.stats()
    assert stats["evictions"] == 10_000 - 16 and stats["peak_tokens"] == 64


@pytest.mark.parametrize("policy", ["lrr", "decay"])
def test_restored_blocks_survive_longer(policy):
    cache = method("streamdycoke_cache", capacity=4, eviction_policy=policy, decay_lambda=0.05)
    for block in range(4):
        cache.store_blocks([block], [1])
    cache.blocks_restored([0])
    assert cache.store_blocks([4], [1]) == [1]  # block 0 was restored: 1 is now the stalest


def test_capacity_smaller_than_one_block_names_the_knob():
    cache = method("streamdycoke_cache", capacity=3)
    with pytest.raises(ValueError, match=r"compression\.streamdycoke_cache\.capacity=3"):
        cache.store_blocks([0], [4])
    with pytest.raises(ValueError, match=r"compression\.streamdycoke_cache\.eviction_policy='lru'"):
        method("streamdycoke_cache", eviction_policy="lru")
