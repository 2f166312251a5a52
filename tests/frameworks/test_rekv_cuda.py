"""CUDA-only checks of the ReKV host (run on the GPU machine: `python -m pytest tests/frameworks/test_rekv_cuda.py`):
pinned offload with asynchronous copies, SDPA kernels with the folded-GQA mask, CUDA-event timings,
and a non-default device — the paths the CPU suite cannot exercise."""

import pytest
import torch

from frameworks.protocol import Query
from frameworks.rekv.config import INIT_PROMPT
from stc import CacherConfig, PrunerConfig, STCConfig

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.usefixtures("exact_fp32_matmul"),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (GPU-only checks of the ReKV host)"),
]

QUERY = Query(prompt="Question: what moves?\nOptions:\n(A) a\n(B) b", retrieval_text="what moves?",
              answer_prefix="Best option: (", max_new_tokens=6)
PROMPT_TEXT = "\n" + QUERY.prompt + "<|im_end|><|im_start|>assistant\n" + QUERY.answer_prefix


def test_cuda_fp32_full_window_matches_stock_model(rekv):
    loaded = rekv.loaded(device="cuda")
    host = rekv.host(loaded, n_local=10_000, frames_per_chunk=2)
    frames = rekv.video(6)
    host.ingest(frames)
    expected = rekv.reference_logits(loaded, frames, PROMPT_TEXT, INIT_PROMPT)
    torch.testing.assert_close(host.prompt_logits(QUERY), expected, rtol=1e-3, atol=1e-3)
    timings = host.timings
    assert timings.vit_ms > 0 and timings.prefill_ms > 0 and timings.peak_memory_mb > 0


def test_pinned_offload_round_trip_matches_on_device_store(rekv):
    loaded = rekv.loaded(device="cuda", seed=1)
    frames = rekv.video(12, seed=1)
    outputs = []
    for offload in (True, False):
        host = rekv.host(loaded, n_local=50, retrieve_size=None, offload=offload, page_blocks=5)
        host.ingest(frames)
        assert host.window.evicted > 0
        if offload:
            assert all(page.is_pinned() and page.device.type == "cpu" for page in host.store.pages)
        else:
            assert all(page.device.type == "cuda" for page in host.store.pages)
        outputs.append((host.prompt_logits(QUERY), host.answer(QUERY)))
    torch.testing.assert_close(outputs[0][0], outputs[1][0], rtol=0, atol=0)
    assert outputs[0][1] == outputs[1][1]


def test_bf16_stream_tracks_stock_model(rekv):
    loaded = rekv.loaded(device="cuda", dtype="bfloat16", seed=2)
    host = rekv.host(loaded, n_local=10_000)
    frames = rekv.video(5, seed=2)
    host.ingest(frames)
    ours = host.prompt_logits(QUERY)
    expected = rekv.reference_logits(loaded, frames, PROMPT_TEXT, INIT_PROMPT)
    cosine = torch.nn.functional.cosine_similarity(ours, expected, dim=-1)
    assert cosine.min() > 0.99, cosine


def test_stc_on_cuda_and_on_a_second_device(rekv):
    device = f"cuda:{torch.cuda.device_count() - 1}"
    loaded = rekv.loaded(device=device)
    stc = STCConfig(cacher=CacherConfig(update_ratio=0.25, cache_interval=2), pruner=PrunerConfig(tokens_per_frame=6))
    host = rekv.host(loaded, stc=stc, n_local=60, retrieve_size=3)
    host.ingest(rekv.video(9))
    logits = host.prompt_logits(QUERY)
    text = host.answer(QUERY)
    timings = host.timings
    assert isinstance(text, str) and timings.visual_tokens_kept == 9 * 6
    assert (timings.vit_reference_frames, timings.vit_selective_frames) == (5, 4)
    assert timings.retrieval_ms > 0 and timings.decode_ms > 0
    assert all(len(selection) == 3 for selection in host._last_selection)
    host.close()
    # the same weights and stream on the CPU (the path tests/frameworks/test_rekv_stc.py checks against
    # the stock model): the CUDA cacher + pruner + retrieval give the same logits
    cpu = rekv.loaded()
    cpu.model.load_state_dict({name: value.cpu() for name, value in loaded.model.state_dict().items()})
    cpu_host = rekv.host(cpu, stc=stc, n_local=60, retrieve_size=3)
    cpu_host.ingest(rekv.video(9))
    cosine = torch.nn.functional.cosine_similarity(logits.cpu(), cpu_host.prompt_logits(QUERY), dim=-1)
    assert cosine.min() > 0.99, cosine
    cpu_host.close()
