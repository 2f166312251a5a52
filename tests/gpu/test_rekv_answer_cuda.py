"""GPU-only checks of the ReKV answer path (answer_loading.py): block copies on a side CUDA stream with
per-layer events equal the synchronous copies bit for bit, with and without the device LRU, loaded
before or inside (`load_during_prefill`) the answer pre-fill.

Run on the GPU machine: `python -m pytest -q tests/gpu/test_rekv_answer_cuda.py`. Skipped on CPU
machines with a visible reason; NOT part of the CPU coverage claims.
"""

import pytest
import torch

from frameworks.protocol import Query
from frameworks.rekv.answer_loading import BlockLoader
from frameworks.rekv.block_store import BlockStore
from tests.frameworks.conftest import make_host, tiny_loaded, video

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (GPU-only checks of the ReKV answer path)"),
]

QUESTIONS = [
    Query(prompt="what moves on the left?", retrieval_text="what moves on the left?", max_new_tokens=4),
    Query(prompt="is anything red at the end?", retrieval_text="red end", max_new_tokens=4),
    Query(prompt="what moves on the left?", retrieval_text="what moves on the left?", max_new_tokens=4),
]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_side_stream_loading_equals_synchronous_loading_on_the_host(dtype):
    loaded = tiny_loaded(seed=3, device="cuda", dtype=dtype, num_hidden_layers=4)
    frames = video(14, seed=2)
    results = {}
    modes = [(False, 0, False, "copies"), (False, 3, False, "copies"), (True, 0, False, "copies"),
             (True, 3, False, "copies"), (True, 3, True, "copies"), (True, 0, True, "copies"),
             (False, 0, False, "gather"), (True, 0, False, "gather"), (True, 3, False, "gather")]
    # (side stream, LRU rows, load inside the answer pre-fill, block loading: gather reads pinned pages over UVA)
    for side_stream, capacity, lazy, loading in modes:
        host = make_host(loaded, dtype=dtype, device="cuda", n_local=60, retrieve_size=4, page_blocks=3,
                         gpu_cache_blocks=capacity, async_block_loading=side_stream, load_during_prefill=lazy,
                         block_loading=loading)
        assert (host.loader.side is not None) == side_stream
        host.ingest(frames)
        assert host.store.pages and all(page.is_pinned() for page in host.store.pages)
        outputs = [(host.prompt_logits(query), host.answer(query)) for query in QUESTIONS]
        if capacity:
            assert host.timings.extra["gpu_cache_hits"] > 0
        results[side_stream, capacity, lazy, loading] = outputs
    reference = results[False, 0, False, "copies"]
    for key, outputs in results.items():
        for (logits, text), (want_logits, want_text) in zip(outputs, reference):
            assert torch.equal(logits, want_logits), key
            assert text == want_text, key


@pytest.mark.parametrize("gather", [True, False])
@pytest.mark.parametrize("capacity", [0, 5])
def test_side_stream_blocks_read_immediately_equal_gather(capacity, gather):
    """Large pinned blocks (copies take far longer than issuing them) consumed as soon as `layer(l)`
    returns: any missing wait on layer l's event would read unfinished rows."""
    generator = torch.Generator().manual_seed(0)
    layers, heads, tokens, dim, count = 8, 4, 196, 128, 40
    store = BlockStore(layers, heads, dim, tokens, torch.bfloat16, torch.device("cuda"), page_blocks=16)
    keys = torch.randn(layers, heads, count * tokens, dim, generator=generator).to(torch.bfloat16)
    store.write(keys.cuda(), (keys * 2).cuda())
    store.commit(count)
    torch.cuda.synchronize()
    assert all(page.is_pinned() for page in store.pages)
    loader = BlockLoader(store, cache_blocks=capacity, gather=gather)
    picks = [sorted(torch.randperm(count, generator=generator)[:12].tolist()) for _ in range(3)]
    for question in range(3):
        selection = [picks[(question + layer) % 3] for layer in range(layers)]  # overlapping across questions
        pending = loader.start(selection)
        sums = [torch.stack(pending.layer(layer)).float().sum(dim=(1, 2, 3)) for layer in range(layers)]
        torch.cuda.synchronize()
        for layer in range(layers):
            want_k, want_v = store.gather(layer, torch.tensor(selection[layer]))
            got_k, got_v = pending.layer(layer)
            assert torch.equal(got_k, want_k) and torch.equal(got_v, want_v)
            assert torch.equal(sums[layer], torch.stack([want_k, want_v]).float().sum(dim=(1, 2, 3)))
    if capacity:
        assert loader.cache.hits > 0
    if gather:  # the pinned pages were read through their CUDA aliases
        assert store._aliases and all(alias.is_cuda for alias in store._aliases.values())
