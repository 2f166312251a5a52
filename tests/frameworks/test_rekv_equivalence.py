"""ReKV host vs plain HF: the streaming context, RoPE-at-attention and retrieval reproduce the stock model.

The reference is built independently of the host's code: stock `get_video_features` (projector + stock
`apply_pooling`, no newline in 5.17), stock embeddings, the stock `Qwen2Model` forward over
[init prompt, video tokens, question] in one causal pass, and the stock `lm_head`.
"""

import pytest
import torch

from frameworks.protocol import Query
from frameworks.rekv.attention import tail_causal_mask
from frameworks.rekv.backends import WindowPrefill
from frameworks.rekv.config import INIT_PROMPT
from frameworks.rekv.rope import apply_rotary
from frameworks.rekv.static_window import StaticPrefill

QUERY = Query(prompt="Question: what moves?\nOptions:\n(A) a\n(B) b\nOnly give the best option.",
              retrieval_text="what moves?", answer_prefix="Best option: (")


PROMPT_TEXT = "\n" + QUERY.prompt + "<|im_end|><|im_start|>assistant\n" + QUERY.answer_prefix


@pytest.mark.parametrize("llm_step", ["eager", "graph"])
@pytest.mark.parametrize("frames_per_chunk,ingest_sizes", [(1, [6]), (3, [6]), (2, [3, 2, 1])])
def test_full_window_matches_stock_model(rekv, frames_per_chunk, ingest_sizes, llm_step):
    loaded = rekv.loaded()
    frames = rekv.video(sum(ingest_sizes))
    host = rekv.host(loaded, n_local=10_000, frames_per_chunk=frames_per_chunk, llm_step=llm_step)
    first = 0
    for size in ingest_sizes:  # several ingest calls = one stream (incremental protocol)
        host.ingest(frames[first:first + size], list(range(first, first + size)))
        first += size
    assert host.window.evicted == 0 and host.store.num_blocks == frames.shape[0]
    ours = host.prompt_logits(QUERY)
    expected = rekv.reference_logits(loaded, frames, PROMPT_TEXT, INIT_PROMPT)
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_answer_is_greedy_decoding_of_stock_model(rekv):
    loaded = rekv.loaded(seed=3)
    frames = rekv.video(4, seed=3)
    host = rekv.host(loaded, n_local=10_000, forbid_eos_first=False)
    host.ingest(frames)
    text = host.answer(Query(prompt=QUERY.prompt, answer_prefix=QUERY.answer_prefix, max_new_tokens=5))
    tokens = []  # stock greedy continuation, re-running the full sequence for every token
    for _ in range(5):
        token = int(torch.argmax(rekv.reference_logits(loaded, frames, PROMPT_TEXT, INIT_PROMPT, tokens)[-1]))
        if token in loaded.codec.eos_token_ids:
            break
        tokens.append(token)
    assert text == loaded.codec.decode(tokens)
    assert host.timings.extra["generated_tokens"] == len(tokens)


class _BruteForceCheck:
    """Wraps a WindowPrefill: recomputes every layer's attention from the PRE-RoPE keys of [sink, last
    n_local tokens (read back from the block store), new tokens] rotated at contiguous positions
    0..n-1 with an explicit eager softmax, and compares."""

    def __init__(self, inner, host):
        self.inner, self.host, self.checked = inner, host, 0

    def __call__(self, layer, queries, keys, values, scale):
        out = self.inner(layer, queries, keys, values, scale)
        host, window = self.host, self.host.window
        blocks = window.length // host.block_tokens
        first = host.store.num_blocks - blocks
        old_k, old_v = host.store.gather(layer, torch.arange(first, host.store.num_blocks))
        all_k = torch.cat([window.init_keys[layer], old_k, keys], dim=1)
        all_v = torch.cat([window.init_values[layer], old_v, values], dim=1)
        positions = torch.arange(all_k.shape[1])
        cos, sin = host.rope.cos_sin(positions)
        q = apply_rotary(queries, cos[-queries.shape[1]:], sin[-queries.shape[1]:])
        k = apply_rotary(all_k, cos, sin)
        groups = q.shape[0] // k.shape[0]
        k, v = k.repeat_interleave(groups, 0), all_v.repeat_interleave(groups, 0)
        scores = (q @ k.transpose(1, 2)) * scale
        scores = scores.masked_fill(~tail_causal_mask(q.shape[1], k.shape[1], q.device), float("-inf"))
        expected = (scores.softmax(-1) @ v).transpose(0, 1).reshape(q.shape[1], -1)
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
        self.checked += 1
        return out


@pytest.mark.parametrize("llm_step", ["eager", "static"])
def test_sliding_window_attends_sink_and_last_n_local_tokens_at_contiguous_positions(rekv, llm_step):
    host = rekv.host(n_local=50, frames_per_chunk=1, llm_step=llm_step)  # 2 frames of 25 tokens in the window
    frames = rekv.video(7)
    host.ingest(frames[:4])
    assert host.window.length == 50 and host.window.evicted == 50
    tokens = host.frame_features(frames[4:5])
    flat = tokens.reshape(-1, tokens.shape[-1])
    if llm_step == "eager":
        backend = WindowPrefill(host.window, host.rope, flat.shape[0])
    else:
        backend = StaticPrefill(host.window, flat.shape[0], host_lengths=True)
    check = _BruteForceCheck(backend, host)
    host.stack.run(flat, check)
    assert check.checked == host.stack.num_layers
    if llm_step == "eager":
        host.window.commit(flat.shape[0])
    else:
        backend.advance()
        host.window.advanced(flat.shape[0])
    host.store.write(*check.inner.raw())
    host.store.commit(1)
    assert host.window.length == 50 and host.window.next_position == host.window.n_init + 125


@pytest.mark.parametrize("llm_step", ["eager", "static"])
def test_answer_context_reloaded_from_offloaded_blocks_equals_the_never_offloaded_window(rekv, llm_step):
    """n_local >= stream: the local window still holds every token (rotated at its stream position).
    Retrieving ALL blocks from the CPU store and re-rotating them at 0..L-1 must rebuild exactly that."""
    host = rekv.host(rekv.loaded(seed=1), n_local=10_000, retrieve_size=None, llm_step=llm_step)
    host.ingest(rekv.video(5, seed=1))
    window = host.window
    assert window.evicted == 0 and all(page.device.type == "cpu" for page in host.store.pages)
    cache = host._retrieve(QUERY)
    length = window.n_init + window.length
    assert cache.length == length
    if llm_step == "eager":
        lo = window.start - window.n_init
        window.prepare(0)  # writes the rotated sink in front of the window
        keys, values = window.keys[:, :, lo:lo + length], window.values[:, :, lo:lo + length]
    else:  # token-major; no eviction, so the ring holds the stream in order after the (rotated) sink
        keys, values = window.keys[:, :length].transpose(1, 2), window.values[:, :length].transpose(1, 2)
    torch.testing.assert_close(cache.keys[:, :, :length], keys, rtol=0, atol=1e-6)
    torch.testing.assert_close(cache.values[:, :, :length], values, rtol=0, atol=0)


def test_offloaded_and_on_device_stores_give_the_same_answer(rekv):
    loaded = rekv.loaded(seed=1)
    frames = rekv.video(6, seed=1)
    results = []
    for offload in (True, False):
        host = rekv.host(loaded, n_local=50, retrieve_size=None, offload=offload)
        host.ingest(frames)
        assert host.window.evicted > 0
        results.append((host.prompt_logits(QUERY), host.answer(QUERY)))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=0)
    assert results[0][1] == results[1][1]


def test_retrieve_size_at_least_block_count_is_the_whole_stream(rekv):
    """With n_local >= stream, top-64 over 6 blocks keeps all of them: identical to retrieve_size=None."""
    loaded = rekv.loaded(seed=2)
    frames = rekv.video(6, seed=2)
    logits = []
    for size in (64, None, 6):
        host = rekv.host(loaded, n_local=10_000, retrieve_size=size)
        host.ingest(frames)
        logits.append(host.prompt_logits(QUERY))
    torch.testing.assert_close(logits[0], logits[1], rtol=0, atol=0)
    torch.testing.assert_close(logits[0], logits[2], rtol=0, atol=0)
