"""DyCoke: TTM pass 1 / pass 2 positions on planted frames, parity with the released whole-video rule,
causality; the decode-time KV pruning hook by hand (selection, re-selection, layers > L only)."""

import pytest
import torch

from stc.baselines.dycoke_ttm import released_ttm
from stc.compression import CompressionSpec, TokenSide


def ttm(**settings):
    return CompressionSpec.from_mapping({"dycoke_ttm": settings}).build()[0]


def planted(base, changed, generator):
    """`base` [N, D] with the positions in `changed` replaced by fresh random vectors."""
    frame = base.clone()
    for p in changed:
        frame[p] = torch.randn(base.shape[1], generator=generator) * 5
    return frame


def test_pass1_and_pass2_positions_on_planted_frames():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 16, generator=g)
    f0 = base
    f1 = planted(f0, [1, 4, 5], g)        # pass 1: vs f0
    f2 = planted(f0, [0, 2, 3], g)        # pass 2: vs f0 (window start)
    f3 = planted(f2, [2, 3, 5], g)        # pass 1: vs f2 (full)
    f4 = planted(f3, [0, 1, 2, 3, 4], g)  # next window's anchor: whole
    f5 = planted(f4, [0, 3, 4], g)        # pass 1: vs f4
    frames = torch.stack([f0, f1, f2, f3, f4, f5])
    method = ttm(merge_ratio=0.5)          # m = int(0.5 * 6) = 3
    kept, picked = method.compress(frames, TokenSide())
    assert [p.tolist() for p in picked] == [list(range(6)), [1, 4, 5], [0, 2, 3], [2, 3, 5], list(range(6)), [0, 3, 4]]
    for f in range(6):
        torch.testing.assert_close(kept[f], frames[f, picked[f]])
    assert method.stats() == {"frames": 6, "tokens_in": 36, "tokens_kept": 6 + 9 + 6 + 3}
    assert method.tokens_out(196) is None


def test_streaming_ttm_equals_released_except_the_last_window_quirk():
    g = torch.Generator().manual_seed(1)
    features = torch.randn(12, 20, 8, generator=g)
    released = released_ttm(features, merge_ratio=0.7)
    stream = ttm()
    ours = [stream.select(features[t]) for t in range(12)]
    m = int(0.3 * 20)
    for t in range(12):
        if t == 10:  # released pass 2 runs over range(0, F - 4, 4): the last window's f2 stays whole
            assert released[t].tolist() == list(range(20)) and ours[t].numel() == m
        else:
            assert sorted(released[t].tolist()) == ours[t].tolist()
    assert [int(p.numel()) for p in ours[:4]] == [20, m, m, m]
    # the released rule also drops a trailing odd frame
    assert released_ttm(features[:9])[8].numel() == 0


def test_released_order_switch_keeps_similarity_order():
    g = torch.Generator().manual_seed(2)
    frames = torch.randn(2, 10, 4, generator=g)
    order = ttm(sort_kept=False).compress(frames, TokenSide())[1][1]
    similarity = torch.nn.functional.cosine_similarity(frames[1], frames[0], dim=-1)
    assert order.tolist() == torch.topk(similarity, 3, largest=False).indices.tolist()


def test_ttm_is_causal_and_resets():
    g = torch.Generator().manual_seed(3)
    frames = torch.randn(9, 10, 4, generator=g)
    other = frames.clone()
    other[6:] = torch.randn(3, 10, 4, generator=g)
    a, b = ttm(), ttm()
    first = [a.select(f) for f in frames]
    second = [b.select(f) for f in other]
    assert all(torch.equal(first[t], second[t]) for t in range(6))
    a.reset()
    assert all(torch.equal(a.select(f), first[t]) for t, f in enumerate(frames[:5]))


def test_merge_ratio_out_of_range_names_the_knob():
    with pytest.raises(ValueError, match=r"compression\.dycoke_ttm\.merge_ratio=1\.0"):
        ttm(merge_ratio=1.0)
    with pytest.raises(ValueError, match=r"compression\.dycoke_kv\.prune_ratio=1\.5"):
        CompressionSpec.from_mapping({"dycoke_kv": {"prune_ratio": 1.5}})


# ---- decode-time KV pruning --------------------------------------------------------------------------
def kv(**settings):
    return CompressionSpec.from_mapping({"dycoke_kv": settings}).build()[0]


def test_attention_row_is_head_averaged_softmax_with_gqa():
    from stc.baselines.dycoke_kv import attention_row

    g = torch.Generator().manual_seed(4)
    q, k = torch.randn(4, 1, 3, generator=g), torch.randn(2, 7, 3, generator=g)
    expected = torch.stack([torch.softmax(q[h, 0] @ k[h // 2].T * 0.5, -1) for h in range(4)]).mean(0)
    torch.testing.assert_close(attention_row(q, k, 0.5), expected)


def test_decode_keys_selects_reselects_and_prunes_only_deeper_layers():
    method = kv(layer=1, prune_ratio=0.5, similarity_threshold=0.9)
    method.start_answer([(2, 8)] * 3)  # image tokens at positions 2..7 of an 10-key context
    q = torch.ones(2, 1, 1)
    keys = torch.zeros(1, 10, 1)
    keys[0, 2:8, 0] = torch.tensor([0.0, 3.0, 1.0, 4.0, 2.0, 0.5])  # layer-1 attention: relative 3 > 1 > 4 > ...
    assert method.decode_keys(0, q, keys, 1.0) is None            # layers <= L: everything
    assert method.decode_keys(1, q, keys, 1.0) is None
    kept = method.decode_keys(2, q, keys, 1.0)
    # non-image [0, 1], top-3 of 6 image tokens: relative {1, 3, 4} + 2 -> [3, 5, 6], non-image [8, 9]
    assert kept.tolist() == [0, 1, 3, 5, 6, 8, 9]
    assert method.reselections == 1
    method.decode_keys(1, q, keys * 1.01, 1.0)                      # nearly the same row: keep the set
    assert method.reselections == 1
    flipped = keys.clone()
    flipped[0, 2:8, 0] = torch.tensor([4.0, 0.0, 3.0, 0.0, 0.0, 2.5])
    method.decode_keys(1, q, flipped, 1.0)                          # the row changed: re-select
    assert method.reselections == 2 and method.decode_keys(2, q, flipped, 1.0).tolist() == [0, 1, 2, 4, 7, 8, 9]


def test_decode_keys_index_follows_each_layers_span_and_the_growing_context():
    """The per-step index is shared only by layers with the same span and context length: a shorter span
    at a deeper layer, the next step's longer context and a re-selection each give their own index."""
    method = kv(layer=1, prune_ratio=0.5, similarity_threshold=0.9)
    method.start_answer([(2, 8), (2, 8), (2, 8), (2, 6)])
    q = torch.ones(2, 1, 1)
    keys = torch.zeros(1, 10, 1)
    keys[0, 2:8, 0] = torch.tensor([0.0, 3.0, 1.0, 4.0, 2.0, 0.5])  # kept relative {1, 3, 4}
    method.decode_keys(1, q, keys, 1.0)
    assert method.decode_keys(2, q, keys, 1.0).tolist() == [0, 1, 3, 5, 6, 8, 9]
    assert method.decode_keys(3, q, keys, 1.0).tolist() == [0, 1, 3, 5, 6, 7, 8, 9]  # span (2, 6): relative 4 is out
    longer = torch.cat([keys, torch.zeros(1, 1, 1)], dim=1)  # next step: one generated token more
    method.decode_keys(1, q, longer, 1.0)                        # same row: the kept set stays
    assert method.reselections == 1
    assert method.decode_keys(2, q, longer, 1.0).tolist() == [0, 1, 3, 5, 6, 8, 9, 10]
    flipped = longer.clone()
    flipped[0, 2:8, 0] = torch.tensor([4.0, 0.0, 3.0, 0.0, 0.0, 2.5])
    method.decode_keys(1, q, flipped, 1.0)                       # re-selected: relative {0, 2, 5}
    assert method.decode_keys(2, q, flipped, 1.0).tolist() == [0, 1, 2, 4, 7, 8, 9, 10]
    assert method.decode_keys(3, q, flipped, 1.0).tolist() == [0, 1, 2, 4, 6, 7, 8, 9, 10]


def test_released_switch_never_prunes():
    method = kv(layer=0, apply_pruning=False)
    method.start_answer([(0, 5)])
    q, keys = torch.randn(2, 1, 4), torch.randn(1, 6, 4)
    assert method.decode_keys(0, q, keys, 1.0) is None and method.decode_keys(1, q, keys, 1.0) is None
    assert method.stats()["reselections"] == 0 and method.stats()["pruning_applied"] is False
