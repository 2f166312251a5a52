"""Block store (offload/reload, pages, representative keys, top-k), local window storage, retrieval pass."""

import pytest
import torch

from frameworks.protocol import Query
from frameworks.rekv.block_store import BlockStore
from frameworks.rekv.local_window import LocalWindow
from frameworks.rekv.rope import RotaryTable, apply_rotary

LAYERS, KV_HEADS, Q_HEADS, DIM, BLOCK = 3, 2, 6, 8, 5


def _store(page_blocks=3, offload=True):
    return BlockStore(LAYERS, KV_HEADS, DIM, BLOCK, torch.float32, torch.device("cpu"), offload=offload,
                      page_blocks=page_blocks)


def _fill(store, frames_per_call, generator):
    """Write blocks the way pre-fill calls do (all layers at once); returns the written K/V per layer."""
    written_k, written_v = [], []
    for count in frames_per_call:
        keys = torch.randn(LAYERS, KV_HEADS, count * BLOCK, DIM, generator=generator)
        values = torch.randn(LAYERS, KV_HEADS, count * BLOCK, DIM, generator=generator)
        store.write(keys, values)
        store.commit(count)
        written_k.append(keys)
        written_v.append(values)
    keys, values = torch.cat(written_k, 2), torch.cat(written_v, 2)
    return [(keys[layer], values[layer]) for layer in range(LAYERS)]


def test_offload_reload_round_trip_is_exact_across_pages():
    generator = torch.Generator().manual_seed(0)
    store = _store(page_blocks=3)
    written = _fill(store, [1, 4, 2], generator)  # 7 blocks over 3 pages, calls straddling page borders
    assert store.num_blocks == 7 and len(store.pages) == 3
    assert all(page.device.type == "cpu" for page in store.pages)
    chosen = torch.tensor([0, 2, 3, 4, 6])
    for layer in range(LAYERS):
        keys, values = store.gather(layer, chosen)
        token_index = (chosen[:, None] * BLOCK + torch.arange(BLOCK)).reshape(-1)
        assert torch.equal(keys, written[layer][0][:, token_index])
        assert torch.equal(values, written[layer][1][:, token_index])


def test_representative_key_is_block_mean_and_compact_score_equals_gqa_expanded_score():
    generator = torch.Generator().manual_seed(1)
    store = _store()
    written = _fill(store, [2, 3], generator)
    keys = written[1][0]  # layer 1, [Hkv, 5 blocks * BLOCK, D]
    expected_means = keys.view(KV_HEADS, 5, BLOCK, DIM).mean(2)  # [Hkv, n, D]
    assert torch.allclose(store.rep_keys[1, :5], expected_means.transpose(0, 1).reshape(5, -1))
    query = torch.randn(Q_HEADS, DIM, generator=generator)
    expanded = expected_means.repeat_interleave(Q_HEADS // KV_HEADS, dim=0)  # [Hq, n, D] (HF repeat_kv order)
    reference = torch.einsum("hnd,hd->n", expanded, query)  # ReKV: flattened query . expanded mean key
    torch.testing.assert_close(store.scores(1, query), reference)


def test_representative_key_of_a_partial_block_is_the_mean_of_its_real_tokens():
    """Variable-count frames (lengths below BLOCK, padded with zeros inside the store): each block's
    representative key averages only its real tokens, whatever the mix of full and partial blocks."""
    generator = torch.Generator().manual_seed(4)
    store = _store(page_blocks=2)
    lengths = [3, 1, BLOCK, 2, 4]  # one full block among partial ones, across page borders
    keys = torch.randn(LAYERS, KV_HEADS, sum(lengths), DIM, generator=generator)
    values = torch.randn(LAYERS, KV_HEADS, sum(lengths), DIM, generator=generator)
    store.write(keys, values, lengths=lengths)
    store.commit(len(lengths))
    start = 0
    for block, length in enumerate(lengths):
        expected = keys[:, :, start:start + length].mean(2)  # [L, Hkv, D]
        torch.testing.assert_close(store.rep_keys[:, block], expected.reshape(LAYERS, -1))
        start += length
    assert store.lengths[:len(lengths)] == lengths


def test_topk_picks_planted_block_and_returns_temporal_order():
    generator = torch.Generator().manual_seed(2)
    store = _store()
    written = _fill(store, [1] * 9, generator)
    query = torch.randn(Q_HEADS, DIM, generator=generator)
    direction = query.view(KV_HEADS, Q_HEADS // KV_HEADS, DIM).sum(1)  # what each KV head is scored against
    planted = 6
    keys = written[0][0].clone()
    keys[:, planted * BLOCK:(planted + 1) * BLOCK] = 50 * direction[:, None, :]
    store.clear()
    all_keys = torch.stack([keys] + [written[layer][0] for layer in range(1, LAYERS)])
    store.write(all_keys, torch.stack([written[layer][1] for layer in range(LAYERS)]))
    store.commit(9)
    picked = store.select(0, query, topk=3)
    assert planted in picked.tolist()
    assert picked.tolist() == sorted(picked.tolist()) and len(picked) == 3
    assert store.select(0, query, topk=1).tolist() == [planted]
    assert store.select(0, query, topk=20).tolist() == list(range(9))  # k >= count: everything, in order


def test_device_store_matches_offloaded_store():
    generator_a, generator_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    on_cpu, on_device = _store(offload=True), _store(offload=False)
    _fill(on_cpu, [2, 2], generator_a)
    _fill(on_device, [2, 2], generator_b)
    for layer in range(LAYERS):
        a, b = on_cpu.gather(layer, torch.tensor([1, 3])), on_device.gather(layer, torch.tensor([1, 3]))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_write_rejects_partial_frame_blocks():
    store = _store()
    try:
        store.write(torch.zeros(LAYERS, KV_HEADS, BLOCK + 1, DIM), torch.zeros(LAYERS, KV_HEADS, BLOCK + 1, DIM))
    except ValueError as error:
        assert "frame blocks" in str(error)
    else:
        raise AssertionError("a partial block must be rejected")


class _Rotary(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inv_freq = 1.0 / (10000 ** (torch.arange(0, DIM, 2).float() / DIM))
        self.rope_type, self.attention_scaling = "default", 1.0


def test_local_window_keeps_last_n_local_tokens_through_compaction_and_growth():
    rope = RotaryTable(_Rotary(), torch.float32)
    window = LocalWindow(LAYERS, KV_HEADS, DIM, n_local=12, dtype=torch.float32, device=torch.device("cpu"), rope=rope)
    sink_k, sink_v = torch.randn(LAYERS, KV_HEADS, 4, DIM), torch.randn(LAYERS, KV_HEADS, 4, DIM)
    window.set_init(sink_k, sink_v)
    history_k, history_v = [], []
    for step in range(40):  # many calls: forces compaction (and one growth for the 9-token call)
        count = 9 if step == 20 else 5
        positions = window.prepare(count)
        assert positions.tolist() == list(range(4 + 5 * step + (4 if step > 20 else 0),
                                                4 + 5 * step + (4 if step > 20 else 0) + count))
        raw_k, raw_v = torch.randn(KV_HEADS, count, DIM), torch.randn(KV_HEADS, count, DIM)
        cos, sin = rope.cos_sin(positions)
        for layer in range(LAYERS):
            keys, values = window.context(layer, apply_rotary(raw_k, cos, sin), raw_v)
        window.commit(count)
        history_k.append(apply_rotary(raw_k, cos, sin))
        history_v.append(raw_v)
        assert window.length == min(12, sum(k.shape[1] for k in history_k))
        # the view handed to attention: [sink, tokens kept before this call, new tokens]
        kept_before = keys.shape[1] - 4 - count
        assert kept_before == min(12, sum(k.shape[1] for k in history_k[:-1]))
        assert torch.equal(keys[:, 4:], torch.cat(history_k, 1)[:, -(kept_before + count):])
        assert torch.equal(values[:, 4:], torch.cat(history_v, 1)[:, -(kept_before + count):])
        # sink rotated to sit just before the window's first token (contiguous positions)
        sink_positions = torch.arange(4) + (positions[0] - kept_before - 4)
        cos_s, sin_s = rope.cos_sin(sink_positions)
        torch.testing.assert_close(keys[:, :4], apply_rotary(sink_k[LAYERS - 1], cos_s, sin_s))
        torch.testing.assert_close(values[:, :4], sink_v[LAYERS - 1])


def test_retrieval_pass_selects_topk_sorted_blocks_per_layer(rekv):
    host = rekv.host(n_local=10_000, retrieve_size=3)
    host.ingest(rekv.video(8))
    count_before = (host.window.length, host.window.next_position, host.store.num_blocks)
    logits = host.prompt_logits(Query(prompt="what moves?"))
    assert torch.isfinite(logits).all()
    assert len(host._last_selection) == host.stack.num_layers
    for picked in host._last_selection:
        values = picked.tolist()
        assert len(values) == 3 and values == sorted(values) and len(set(values)) == 3
    # answering leaves the stream untouched
    assert (host.window.length, host.window.next_position, host.store.num_blocks) == count_before


class _QuerySpy:
    """Attention backend that records each layer's mean pre-RoPE query while attending like a pre-fill."""

    def __init__(self, inner):
        self.inner, self.means = inner, []

    def __call__(self, layer, queries, keys, values, scale):
        self.means.append(queries.mean(dim=1))
        return self.inner(layer, queries, keys, values, scale)


@pytest.mark.parametrize("llm_step", ["eager", "static"])
def test_each_layer_retrieves_with_its_own_mean_question_query(rekv, llm_step):
    from frameworks.rekv.backends import WindowPrefill
    from frameworks.rekv.static_window import StaticPrefill

    host = rekv.host(n_local=60, retrieve_size=2, llm_step=llm_step)
    host.ingest(rekv.video(7))
    recorded = []
    select = host.store.select
    # the static pass pads the question and scores the whole key buffer (BlockStore.select_live)
    name = "select" if llm_step == "eager" else "select_live"
    spied = getattr(host.store, name)
    setattr(host.store, name,
            lambda layer, mean, topk, *live: recorded.append((layer, mean, topk)) or spied(layer, mean, topk, *live))
    host.prompt_logits(Query(prompt="a long templated prompt that must not be used", retrieval_text="what moves?"))
    ids = host.codec.encode("what moves?")
    if llm_step == "eager":
        inner = WindowPrefill(host.window, host.rope, len(ids), keep_raw=False)
    else:
        inner = StaticPrefill(host.window, len(ids), commit=False, keep_raw=False, host_lengths=True)
    spy = _QuerySpy(inner)
    host.stack.run(host.stack.embed(ids, host.device), spy)
    assert [layer for layer, _, _ in recorded] == list(range(host.stack.num_layers))
    for (layer, used, topk), mean in zip(recorded, spy.means):
        torch.testing.assert_close(used, mean)
        assert topk == 2 and host._last_selection[layer].tolist() == select(layer, mean, 2).tolist()
