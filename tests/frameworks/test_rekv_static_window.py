"""The static (graph-ready) ReKV window against the plain growable one, and split attention against one
softmax.

`StaticWindow` keeps the window in a fixed ring whose lengths live on the device; `LocalWindow` is the
plain path (a growable buffer, SDPA with an explicit mask), itself checked against the stock HF model in
test_rekv_equivalence.py. Fed the same random q/k/v in float64, step after step, with chunk sizes that do
not divide n_local (so the ring wraps mid-chunk) and for both sink modes, every step's attention output
and every pre-RoPE key must agree to float64 rounding — with lengths taken from the host AND read on
the device (the mode a captured graph uses).
"""

import pytest
import torch
from torch import nn

from frameworks.common.split_attention import SplitAttention, merge
from frameworks.rekv.backends import WindowPrefill
from frameworks.rekv.local_window import LocalWindow
from frameworks.rekv.rope import RotaryTable
from frameworks.rekv.static_window import StaticPrefill, StaticWindow

HQ, HKV, D, N_INIT, N_LOCAL, LAYERS = 6, 2, 8, 3, 11, 2
CHUNKS = [4, 1, 5, 3, 7, 2, 6, 4, 3, 5]  # 40 tokens through an 11-token window: several wraps, unaligned


class _Rotary(nn.Module):
    def __init__(self):
        super().__init__()
        self.inv_freq = 1.0 / (10000 ** (torch.arange(0, D, 2, dtype=torch.float64) / D))


def _windows(mode, n_init=N_INIT, splits=3):
    rope = RotaryTable(_Rotary(), torch.float64)
    cpu = torch.device("cpu")
    plain = LocalWindow(LAYERS, HKV, D, N_LOCAL, torch.float64, cpu, rope, sink_positions=mode)
    static = StaticWindow(LAYERS, HKV, D, N_LOCAL, torch.float64, cpu, rope, SplitAttention("reference"), mode, splits)
    if n_init:
        gen = torch.Generator().manual_seed(0)
        sink = [torch.randn(LAYERS, HKV, n_init, D, generator=gen, dtype=torch.float64) for _ in range(2)]
        plain.set_init(*sink)
        static.set_init(*sink)
    return plain, static, rope


def _qkv(seed, count):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(HQ, count, D, generator=gen, dtype=torch.float64),
             torch.randn(HKV, count, D, generator=gen, dtype=torch.float64),
             torch.randn(HKV, count, D, generator=gen, dtype=torch.float64)) for _ in range(LAYERS)]


@pytest.mark.parametrize("splits", [1, 4], ids=["one-chunk", "4-key-chunks"])
@pytest.mark.parametrize("host_lengths", [True, False], ids=["host-lengths", "device-lengths"])
@pytest.mark.parametrize("mode", ["window", "released"])
def test_static_window_equals_plain_window_step_by_step(mode, host_lengths, splits):
    """4 chunks of a 14-row context (sink 3 + ring 11): chunks of 4 rows, some empty while filling."""
    plain, static, rope = _windows(mode, splits=splits)
    for step, count in enumerate(CHUNKS):
        inputs = _qkv(step, count)
        assert static.fixed_distance_sink == plain.fixed_distance_sink
        a = WindowPrefill(plain, rope, count)
        b = StaticPrefill(static, count, host_lengths=host_lengths)
        for layer, (q, k, v) in enumerate(inputs):
            torch.testing.assert_close(b(layer, q, k, v, D ** -0.5), a(layer, q, k, v, D ** -0.5), rtol=0, atol=1e-12)
        plain.commit(count)
        b.advance()
        static.advanced(count)
        assert torch.equal(b.raw()[0], a.raw()[0]) and torch.equal(b.raw()[1], a.raw()[1])
        assert (static.length, static.next_position, static.evicted) == (plain.length, plain.next_position, plain.evicted)
        assert static.meta.tolist() == [static.next_position, static.fill, static.write]
    assert plain.evicted > 2 * N_LOCAL  # the ring wrapped several times


def test_static_window_without_sink_tokens():
    plain, static, rope = _windows("window", n_init=0)
    for step, count in enumerate(CHUNKS[:5]):
        a, b = WindowPrefill(plain, rope, count), StaticPrefill(static, count, host_lengths=False)
        for layer, (q, k, v) in enumerate(_qkv(step, count)):
            torch.testing.assert_close(b(layer, q, k, v, 0.3), a(layer, q, k, v, 0.3), rtol=0, atol=1e-12)
        plain.commit(count)
        b.advance()
        static.advanced(count)


@pytest.mark.parametrize("question", [2, 13])
def test_retrieval_pass_leaves_no_trace(question):
    """A question pass between ingest steps changes neither the counters nor any later step's output."""
    _, probed, _ = _windows("window")
    _, clean, _ = _windows("window")
    for step, count in enumerate(CHUNKS):
        meta = probed.meta.clone()
        probe = StaticPrefill(probed, question, commit=False, keep_raw=False, host_lengths=True)
        for layer, (q, k, v) in enumerate(_qkv(1000 + step, question)):
            probe(layer, q, k, v, 0.3)
        assert torch.equal(probed.meta, meta)
        outs = []
        for window in (probed, clean):
            backend = StaticPrefill(window, count, host_lengths=False)
            outs.append([backend(layer, q, k, v, 0.3) for layer, (q, k, v) in enumerate(_qkv(step, count))])
            backend.advance()
            window.advanced(count)
        for a, b in zip(*outs):
            assert torch.equal(a, b)


def test_split_attention_merge_is_one_softmax_over_all_keys():
    """Hand-built: two key sets (one partly invalid) and a causal self block vs one masked softmax."""
    gen = torch.Generator().manual_seed(5)
    q = torch.randn(4, HQ, D, generator=gen, dtype=torch.float64)
    context = [torch.randn(9, HKV, D, generator=gen, dtype=torch.float64) for _ in range(2)]
    new = [torch.randn(4, HKV, D, generator=gen, dtype=torch.float64) for _ in range(2)]
    attention = SplitAttention("reference")
    used = torch.tensor([6])
    merged = merge([attention(q, *context, 0.4, used=used), attention(q, *new, 0.4, causal=True)])
    # one softmax over [first 6 context keys, new keys j <= i], written out per query and head
    groups = HQ // HKV
    expected = torch.empty(4, HQ, D, dtype=torch.float64)
    for i in range(4):
        for h in range(HQ):
            keys = torch.cat([context[0][:6, h // groups], new[0][:i + 1, h // groups]])
            values = torch.cat([context[1][:6, h // groups], new[1][:i + 1, h // groups]])
            expected[i, h] = torch.softmax(keys @ q[i, h] * 0.4, dim=0) @ values
    torch.testing.assert_close(merged, expected.reshape(4, HQ * D), rtol=0, atol=1e-12)
    host_sliced = merge([attention(q, *context, 0.4, used=6), attention(q, *new, 0.4, causal=True)])
    torch.testing.assert_close(host_sliced, merged, rtol=0, atol=1e-12)


@pytest.mark.parametrize("used", [1, 2, 5, 13, 29, 37])
@pytest.mark.parametrize("splits", [1, 4, 7])
def test_device_length_chunks_share_the_valid_rows_and_merge_to_one_softmax(used, splits):
    """`plan_chunks` with the length on the device cuts the VALID rows (not the 37-row capacity) into
    equal shares, some empty when used < splits; rows past `used` hold NaN. The merged chunks equal the
    one-call attention over the first `used` rows, and the bounds are the shares i·used // P."""
    gen = torch.Generator().manual_seed(used * 10 + splits)
    q = torch.randn(5, HQ, D, generator=gen, dtype=torch.float64)
    keys, values = (torch.randn(37, HKV, D, generator=gen, dtype=torch.float64) for _ in range(2))
    keys[used:], values[used:] = float("nan"), float("nan")
    new = [torch.randn(5, HKV, D, generator=gen, dtype=torch.float64) for _ in range(2)]
    attention = SplitAttention("reference")
    plan = attention.plan_chunks(37, splits, torch.tensor([used]), torch.device("cpu"))
    assert plan.on_device and plan.count == splits and plan.size == -(-37 // splits)
    assert plan.bounds.tolist() == [i * used // splits for i in range(splits + 1)]
    own = attention(q, *new, 0.3, causal=True)
    chunked = attention.merge_chunks(attention.context(q, keys, values, 0.3, plan), [own])
    whole = merge([attention(q, keys[:used], values[:used], 0.3), own])
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-12)


def test_only_the_flash_kernel_splits_the_context_into_chunks(monkeypatch):
    """P key chunks buy thread-block occupancy for FlashAttention; the reference kernel's chunks on device
    bounds each read the whole buffer, so on a GPU it must take ONE chunk (it took the flash P, up to 66
    full-buffer passes per layer for a decoding step), and on CPU both take one."""
    from types import SimpleNamespace

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(multi_processor_count=132))
    gpu = torch.device("cuda")
    assert SplitAttention("flash").splits(64, 28, 4, 15004, gpu) == 16  # one wave of 264 FA2 blocks
    assert SplitAttention("flash").splits(1, 28, 4, 15004, gpu) == 66
    assert SplitAttention("reference").splits(64, 28, 4, 15004, gpu) == 1
    assert SplitAttention("flash").splits(64, 28, 4, 15004, torch.device("cpu")) == 1


def test_split_attention_rejects_bad_shapes():
    attention = SplitAttention("reference")
    with pytest.raises(ValueError, match="causal attention needs"):
        attention(torch.zeros(3, 4, 8), torch.zeros(2, 2, 8), torch.zeros(2, 2, 8), 1.0, causal=True)
    with pytest.raises(ValueError, match="causal attention needs"):
        attention(torch.zeros(3, 4, 8), torch.zeros(5, 2, 8), torch.zeros(5, 2, 8), 1.0, causal=True, used=2)
    with pytest.raises(ValueError, match="multiple of key/value heads"):
        attention(torch.zeros(3, 3, 8), torch.zeros(5, 2, 8), torch.zeros(5, 2, 8), 1.0)
    with pytest.raises(ValueError, match="unknown attention kernel"):
        SplitAttention("triton")


@pytest.mark.parametrize("mode", ["window", "released"])
def test_host_static_and_graph_steps_equal_the_eager_step(rekv, mode):
    """Through the tiny host, chunks of 3 frames from an off-grid start, past the window (eviction and
    ring wrap): logits of a question equal between llm_step eager / static / graph (= static on CPU)."""
    from frameworks.protocol import Query

    loaded = rekv.loaded(seed=4)
    frames = rekv.video(8, seed=4)
    results = {}
    for step in ("eager", "static", "graph"):
        host = rekv.host(loaded, n_local=85, frames_per_chunk=3, retrieve_size=3, sink_positions=mode, llm_step=step)
        host.ingest(frames[:1], [0.0])
        host.ingest(frames[1:], [float(i) for i in range(1, 8)])
        assert host.window.evicted > 0
        query = Query(prompt="what moves?", retrieval_text="what moves?")
        results[step] = (host.prompt_logits(query), [s.tolist() for s in host._last_selection])
    for step in ("static", "graph"):
        torch.testing.assert_close(results[step][0], results["eager"][0], rtol=1e-4, atol=1e-4)
        assert results[step][1] == results["eager"][1]


def test_static_decoding_steps_equal_the_eager_loop(rekv, monkeypatch):
    """Answers (greedy, several tokens, through eviction) are the same text with the static decoder as
    with the eager per-token loop, and the static decoder really produced the tokens after the first."""
    from frameworks.protocol import Query
    from frameworks.rekv.graphed_decode import GraphedDecoder

    loaded = rekv.loaded(seed=8)
    frames = rekv.video(7, seed=8)
    fed = []
    generate = GraphedDecoder.generate
    monkeypatch.setattr(GraphedDecoder, "generate", lambda self, *a, **k: fed.append(a[2]) or generate(self, *a, **k))
    texts = {}
    for step in ("eager", "static"):
        host = rekv.host(loaded, n_local=60, retrieve_size=2, llm_step=step, forbid_eos_first=True)
        host.ingest(frames)
        texts[step] = [host.answer(Query(prompt=p, retrieval_text=p, max_new_tokens=7)) for p in ("what moves?", "who?")]
    assert texts["static"] == texts["eager"]
    assert fed == [6, 6]  # max_new_tokens - 1 steps after the first token, for both questions


def test_reference_kernel_ignores_garbage_beyond_the_device_length():
    """Buffers come from torch.empty: rows beyond `used` may be NaN/inf and must not leak into the output
    (the lazily loaded answer cache produced NaN tokens before this was handled)."""
    gen = torch.Generator().manual_seed(9)
    q = torch.randn(3, HQ, D, generator=gen)
    keys, values = torch.randn(10, HKV, D, generator=gen), torch.randn(10, HKV, D, generator=gen)
    dirty_k, dirty_v = keys.clone(), values.clone()
    dirty_k[6:], dirty_v[6:] = float("nan"), float("inf")
    attention, used = SplitAttention("reference"), torch.tensor([6])
    clean = attention(q, keys, values, 0.3, used=used)
    dirty = attention(q, dirty_k, dirty_v, 0.3, used=used)
    assert torch.equal(clean[0], dirty[0]) and torch.equal(clean[1], dirty[1])


def test_one_token_answer_runs_no_decoding_step(rekv, monkeypatch):
    """max_new_tokens=1: the first token comes from the prompt pre-fill; the decoder must not run (on CUDA
    it would capture a graph for nothing: that inflated the H200 first-token latency by ~70 ms)."""
    from frameworks.protocol import Query
    from frameworks.rekv.graphed_decode import GraphedDecoder

    host = rekv.host(n_local=60, retrieve_size=2, llm_step="static")
    host.ingest(rekv.video(4))
    monkeypatch.setattr(GraphedDecoder, "_step", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded")))
    text = host.answer(Query(prompt="what moves?", max_new_tokens=1))
    assert isinstance(text, str) and host.timings.extra["generated_tokens"] <= 1


def test_graphed_steps_capture_a_token_count_on_its_second_call(rekv, monkeypatch):
    """GraphedSteps through its GraphTable (capture itself needs CUDA: replaced by a recorder here): a
    token count seen once runs eagerly, the second call captures, later calls replay; at most
    `max_graphs` are kept; every capture gets the table's one memory pool."""
    from frameworks.rekv.graphed_step import GraphedSteps

    host = rekv.host(n_local=10_000, llm_step="static")
    steps = host.steps
    steps.step_graphs.enabled, steps.step_graphs.limit = True, 2
    captured, replayed, pools = [], [], []

    class _Graph:
        def __init__(self, count):
            self.count = count

        def replay(self):
            replayed.append(self.count)

        def pool(self):
            return "pool"

    def fake_record(self, hidden, pool):
        captured.append(hidden.shape[0])
        pools.append(pool)
        raw = self._step(hidden, host_lengths=True)  # a real step stands in for the (fake) replay that follows
        graph = _Graph(hidden.shape[0])
        return graph, (graph, hidden.clone(), raw)

    monkeypatch.setattr(GraphedSteps, "_record_step", fake_record)
    hidden = torch.zeros(30, host.stack.hidden_size)
    for count in (5, 5, 5, 7, 9, 7, 9, 5):
        steps(hidden[:count])
    assert captured == [5, 7, 9, 5]          # second sightings; 5 re-captured after being dropped (max 2)
    assert replayed == [5, 5, 7, 9, 5]        # the capturing call and later calls of a kept key replay
    assert list(steps.step_graphs.entries) == [(9, False, torch.float32), (5, False, torch.float32)]
    assert pools == [None, "pool", "pool", "pool"] and steps.captures == 4


@pytest.mark.parametrize("sink_positions", ["window", "released"])
def test_captured_steps_with_their_warmups_restores_and_replays_equal_the_eager_static_steps(rekv, monkeypatch,
                                                                                             sink_positions):
    """GraphedSteps' real `_record_step` (its save/restore of `meta` and of the ring rows the step writes)
    with `capture` stood in for on CPU as CUDA's protocol runs it: two warm-ups each followed by `restore`,
    the recording run, `restore` again; a replay re-runs the step from the static input into the static
    outputs. Step after step - counts that do not divide n_local (the ring wraps mid-chunk), a key
    re-sighted after others, the released sink switching keys once tokens are evicted - the pre-RoPE K/V
    returned and the window's buffers and device counters equal a host whose steps all run eagerly."""
    from frameworks.rekv import graphed_step

    replays = []

    class _Graph:
        def __init__(self, step, outputs):
            self.step, self.outputs = step, outputs

        def replay(self):
            replays.append(self.outputs[0].shape[2])
            for static, fresh in zip(self.outputs, self.step()):
                static.copy_(fresh)

        def pool(self):
            return None

    def fake_capture(step, restore, device, pool=None, warmups=2):
        for _ in range(warmups):
            step()
            restore()
        outputs = step()
        restore()
        return _Graph(step, outputs), outputs

    monkeypatch.setattr(graphed_step, "capture", fake_capture)
    loaded = rekv.loaded(seed=4)
    graphed = rekv.host(loaded, n_local=30, llm_step="static", sink_positions=sink_positions)
    eager = rekv.host(loaded, n_local=30, llm_step="static", sink_positions=sink_positions)
    graphed.steps.step_graphs.enabled = True  # (off on CPU: capture is the stand-in above)
    generator = torch.Generator().manual_seed(4)
    for count in (7, 11, 7, 13, 11, 7, 13, 7, 11):  # 87 tokens through a 30-token ring
        hidden = torch.randn(count, graphed.stack.hidden_size, generator=generator)
        got, want = graphed.steps(hidden), eager.steps(hidden)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        for name in ("keys", "values"):
            torch.testing.assert_close(getattr(graphed.window, name), getattr(eager.window, name),
                                       rtol=1e-5, atol=1e-5)
        assert torch.equal(graphed.window.meta, eager.window.meta)
        assert graphed.window.fixed_distance_sink == eager.window.fixed_distance_sink
    assert graphed.steps.step_graphs.captures >= 2 and replays  # the comparison covered replays
    assert eager.steps.captures == 0


def test_fused_rotation_equals_apply_rotary():
    """`rope.rotate` (roll + addcmul, sign folded into sin) is `apply_rotary`, at large odd positions."""
    from frameworks.rekv.rope import apply_rotary, rotate, rotation_tables

    rope = RotaryTable(_Rotary(), torch.float64)
    positions = torch.tensor([0, 7, 12_345, 99_999])
    x = torch.randn(4, 3, D, generator=torch.Generator().manual_seed(4), dtype=torch.float64)  # [N, H, D]
    cos, sin = rope.cos_sin(positions)
    expected = apply_rotary(x.transpose(0, 1), cos, sin).transpose(0, 1)
    torch.testing.assert_close(rotate(x, *rotation_tables(rope, positions)), expected, rtol=0, atol=1e-12)


def test_question_pass_pads_to_a_bucket_and_replays_one_graph_per_bucket(rekv, monkeypatch):
    """GraphedSteps.select (capture replaced by a recorder whose replay recomputes from the static inputs,
    so a stale input - an embedding, the real-token count, the live-block count - would show): questions
    of different lengths in one padded bucket share a graph captured on the bucket's second sighting;
    every selection equals the UNPADDED pass over the live blocks only (which the host-level tests
    compare with the eager retrieval pass). Blocks arrive between questions (the live count changes)."""
    from frameworks.rekv.graphed_step import GraphedSteps
    from frameworks.rekv.static_window import StaticRetrieval

    host = rekv.host(n_local=60, retrieve_size=2, llm_step="static")
    frames = rekv.video(9, seed=3)
    host.ingest(frames[:4])
    steps, store = host.steps, host.store
    steps.question_graphs.enabled = True  # (the ingest steps stay eager: their table is off on CPU)
    captured = []

    def fake_record(self, hidden, padded, store, topk, pool):
        inputs = self._question_inputs(hidden, padded, store)
        run = lambda: self._question(inputs, store, topk)  # noqa: E731
        selected = run()
        captured.append(padded)
        graph = _RecomputingGraph(run, selected)
        return graph, (graph, inputs, selected)

    monkeypatch.setattr(GraphedSteps, "_record_question", fake_record)
    embed = lambda ids: host.stack.embed(ids, host.device)  # noqa: E731

    def unpadded(ids):
        rows = embed(ids)
        backend = StaticRetrieval(host.window, len(ids), store, 2, torch.tensor([len(ids)]),
                                  torch.tensor([store.num_blocks]))
        host.stack.run(rows, backend)
        return torch.stack(backend.selected)

    generator = torch.Generator().manual_seed(0)
    vocab = host.stack.language_model.embed_tokens.num_embeddings
    for index, count in enumerate([3, 11, 7, 20, 2, 17]):  # buckets of 16: 16, 16, 16, 32, 16, 32
        if index == 2:
            host.ingest(frames[4:])  # more blocks: same key buffer, a larger live count
        ids = torch.randint(0, vocab, (count,), generator=generator).tolist()
        got = steps.select(embed(ids), store, 2)
        assert torch.equal(got, unpadded(ids)), count
        assert int(got.max()) < store.num_blocks
    assert captured == [16, 32]  # each bucket on its second sighting
    assert len(steps.question_graphs.entries) == 2


def test_static_answer_prefill_equals_the_eager_prompt_pass_and_replays_per_bucket(rekv, monkeypatch):
    """graphed_answer.GraphedAnswerPrefill (capture replaced by a recorder whose replay recomputes from the
    static inputs, so a stale input would show): the last prompt token's logits and the prompt's K/V in
    the answer cache equal the eager host's, for prompts of different lengths sharing a padded bucket
    (captured on its second sighting, then replayed); the host keeps ONE answer cache across questions."""
    from frameworks.protocol import Query
    from frameworks.rekv.graphed_answer import GraphedAnswerPrefill

    loaded = rekv.loaded(seed=5)
    frames = rekv.video(6, seed=5)
    eager = rekv.host(loaded, n_local=60, retrieve_size=2, llm_step="eager")
    static = rekv.host(loaded, n_local=60, retrieve_size=2, llm_step="static")
    for host in (eager, static):
        host.ingest(frames)
    prefill = static.answer_prefill
    captured = []

    def fake_record(self, cache, hidden, padded, pool):
        inputs = self._inputs(cache, hidden, padded)
        run = lambda: self._run(cache, inputs)  # noqa: E731
        captured.append(padded)
        logits = run()
        graph = _RecomputingGraph(run, logits)
        return graph, (graph, inputs, logits)

    monkeypatch.setattr(GraphedAnswerPrefill, "_record", fake_record)
    monkeypatch.setattr(GraphedAnswerPrefill, "_graphable", staticmethod(lambda device: True))
    prefill.graphs.enabled = True
    caches, buckets = set(), []
    for prompt in ("what moves?", "who is there now?", "what moves here?", "and what is red in the last frames?"):
        query = Query(prompt=prompt, retrieval_text=prompt)
        ids = static._prompt_ids(query)
        buckets.append(prefill.padded(len(ids)))
        plain = eager._retrieve(query)
        want = eager.stack.logits(eager._forward_answer(plain, ids)[-1])
        cache = static._retrieve(query)
        caches.add(cache.keys.data_ptr())
        end = cache.length + len(ids)
        got = prefill.prefill(cache, static.stack.embed(ids, static.device))
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(cache.keys[:, :, :end], plain.keys[:, :, :end], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(cache.values[:, :, :end], plain.values[:, :, :end], rtol=1e-5, atol=1e-5)
    assert len(caches) == 1  # one persistent answer cache
    repeated = [b for i, b in enumerate(buckets) if b in buckets[:i]]
    assert repeated and captured == sorted(set(repeated), key=repeated.index)  # second sightings only
    assert prefill.replays == len(repeated)


def test_one_decoding_graph_serves_every_answer_of_the_persistent_answer_cache(rekv, monkeypatch):
    """GraphedDecoder with capture replaced by a recorder whose replay runs the step on the graph's static
    token/position (a stale token or position on reuse would change the text): the first long-enough
    answer captures, every later answer - also a 2-step one - replays the same graph; texts equal the
    eager loop's."""
    from frameworks.protocol import Query
    from frameworks.rekv import graphed_decode
    from frameworks.rekv.graphed_decode import GraphedDecoder

    recorded = []

    def fake_capture(step, restore, device, pool=None, warmups=2):
        recorded.append(device)
        return type("Graph", (), {"replay": staticmethod(step)})(), None

    loaded = rekv.loaded(seed=9)
    frames = rekv.video(6, seed=9)
    questions = [("what moves?", 7), ("who?", 3), ("what is red?", 9), ("what moves?", 5)]
    texts = {}
    for step in ("eager", "static"):
        host = rekv.host(loaded, n_local=60, retrieve_size=2, llm_step=step, forbid_eos_first=True)
        host.ingest(frames)
        if step == "static":
            monkeypatch.setattr(graphed_decode, "capture", fake_capture)
            monkeypatch.setattr(GraphedDecoder, "_graphable", lambda self, device: True)
        texts[step] = [host.answer(Query(prompt=p, retrieval_text=p, max_new_tokens=n)) for p, n in questions]
    assert texts["static"] == texts["eager"]
    decoder = host.decoder
    assert len(recorded) == decoder.captures == 1 and len(decoder.graphs) == 1
    assert decoder.replays >= 6 + 2 + 8 + 4 - 3  # every step of every answer (minus early stops) replayed


class _RecomputingGraph:
    """Stands in for a captured CUDA graph on CPU: `replay` recomputes `run()` (reading the runner's static
    inputs) into the static output, so a static input left stale by the runner changes the result."""

    def __init__(self, run, output):
        self.run, self.output = run, output

    def replay(self):
        self.output.copy_(self.run())

    def pool(self):
        return None


def test_fold_queries_orders_rows_by_chunk_group_query():
    """The flash context call's query layout (what `_merge_folded` un-folds): row c·G·S + g·S + i of KV
    head j is query i of head j·G + g, for every chunk c."""
    from frameworks.common.split_attention import fold_queries

    q = torch.randn(5, HQ, D, dtype=torch.float64)
    groups = HQ // HKV
    folded = fold_queries(q, HKV, 3)
    assert folded.shape == (3 * groups * 5, HKV, D)
    for c in range(3):
        for g in range(groups):
            for i in range(5):
                for j in range(HKV):
                    assert torch.equal(folded[c * groups * 5 + g * 5 + i, j], q[i, j * groups + g])
