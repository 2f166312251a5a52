"""CUDA-only: the graphed ReKV pre-fill step (static window + split attention in CUDA graphs) equals the
eager step, and the FlashAttention-2 variable-length kernel equals the reference split attention.

Run on the GPU machine: `python -m pytest -q tests/frameworks/test_rekv_graph_cuda.py`."""

import pytest
import torch

from frameworks.common.split_attention import SplitAttention, flash_supported, merge
from frameworks.protocol import Query

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.usefixtures("exact_fp32_matmul"),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (graphed ReKV step)"),
]

QUERY = Query(prompt="Question: what moves?\nOptions:\n(A) a\n(B) b", retrieval_text="what moves?",
              answer_prefix="Best option: (", max_new_tokens=4)


@pytest.mark.parametrize("count,capacity,used", [(64, 1000, 700), (7, 333, 1), (196, 15020, 15020)])
def test_flash_kernel_equals_reference_with_device_length(count, capacity, used):
    gen = torch.Generator(device="cuda").manual_seed(0)
    shape = lambda n, h: (n, h, 128)  # noqa: E731
    q = torch.randn(shape(count, 28), device="cuda", generator=gen).bfloat16()
    ctx = [torch.randn(shape(capacity, 4), device="cuda", generator=gen).bfloat16() for _ in range(2)]
    new = [torch.randn(shape(count, 4), device="cuda", generator=gen).bfloat16() for _ in range(2)]
    assert flash_supported(q)
    length = torch.tensor([used], device="cuda", dtype=torch.int32)
    outs = {}
    for kernel in ("flash", "reference"):
        attention = SplitAttention(kernel)
        parts = [attention(q, *ctx, 0.088, used=length), attention(q, *new, 0.088, causal=True)]
        outs[kernel] = merge(parts, dtype=torch.float32)
        lse_flash = parts[0][1]
    torch.testing.assert_close(outs["flash"], outs["reference"], rtol=2e-2, atol=2e-2)
    assert lse_flash.shape == (count, 28) and torch.isfinite(lse_flash).all()


@pytest.mark.parametrize("count,capacity,used", [(64, 1000, 700), (5, 40, 5), (196, 2000, 2000)])
def test_flash_lower_right_causal_with_device_length(count, capacity, used):
    """The "append"/"full" phases: the queries are the last `count` of `used` valid keys (on the device)."""
    gen = torch.Generator(device="cuda").manual_seed(1)
    q = torch.randn(count, 28, 128, device="cuda", generator=gen).bfloat16()
    kv = [torch.randn(capacity, 4, 128, device="cuda", generator=gen).bfloat16() for _ in range(2)]
    length = torch.tensor([used], device="cuda", dtype=torch.int32)
    flash, _ = SplitAttention("flash")(q, *kv, 0.088, causal=True, used=length)
    reference, _ = SplitAttention("reference")(q, *kv, 0.088, causal=True, used=length)
    torch.testing.assert_close(flash.float(), reference.float(), rtol=2e-2, atol=2e-2)
    # a misaligned (upper-left) mask would differ by far more than bf16 rounding
    upper_left, _ = SplitAttention("reference")(q, kv[0][:count], kv[1][:count], 0.088, causal=True)
    if used > count:
        assert (flash.float() - upper_left.float()).abs().max() > 0.1


def _stream(rekv, loaded, llm_step, mode, chunk):
    host = rekv.host(loaded, n_local=85, frames_per_chunk=chunk, retrieve_size=3, sink_positions=mode, llm_step=llm_step)
    frames = rekv.video(9, seed=6)
    host.ingest(frames[:1], [0.0])                       # off-grid start, then chunks (last one shorter)
    host.ingest(frames[1:], [float(i) for i in range(1, 9)])
    assert host.window.evicted > 0
    return host, host.prompt_logits(QUERY), [s.tolist() for s in host._last_selection]


@pytest.mark.parametrize("mode", ["window", "released"])
def test_graphed_step_equals_eager_fp32(rekv, mode):
    """float32: the reference kernel with lengths read on the device inside the graphs."""
    loaded = rekv.loaded(device="cuda", seed=6)
    _, eager, eager_sel = _stream(rekv, loaded, "eager", mode, 3)
    host, graphed, graphed_sel = _stream(rekv, loaded, "graph", mode, 3)
    torch.testing.assert_close(graphed, eager, rtol=1e-4, atol=1e-4)
    assert graphed_sel == eager_sel
    eager_host = _stream(rekv, loaded, "eager", mode, 3)[0]
    query = Query(prompt=QUERY.prompt, retrieval_text=QUERY.retrieval_text, max_new_tokens=6, answer_prefix="(")
    expected = eager_host.answer(query)
    for _ in range(3):  # the answer pre-fill: eager, captured on the 2nd call, replayed on the 3rd
        assert host.answer(query) == expected                   # graphed decoding steps, same tokens
    assert host.decoder.captures >= 1 and host.decoder.replays >= 1
    assert host.answer_prefill.captures == 1 and host.answer_prefill.replays == 2
    graphed_logits = host.answer_prefill.prefill(host._retrieve(query), host.stack.embed(host._prompt_ids(query), "cuda"))
    plain = eager_host._retrieve(query)
    want = eager_host.stack.logits(eager_host._forward_answer(plain, eager_host._prompt_ids(query))[-1])
    torch.testing.assert_close(graphed_logits, want, rtol=1e-4, atol=1e-4)
    host.reset()  # a second stream replays the same graphs from reset counters
    frames = rekv.video(9, seed=6)
    host.ingest(frames[:1], [0.0])
    host.ingest(frames[1:], [float(i) for i in range(1, 9)])
    torch.testing.assert_close(host.prompt_logits(QUERY), eager, rtol=1e-4, atol=1e-4)
    # a key is captured on its second call: by now every chunk size of the stream (per sink mode) was
    assert host.steps.captures >= 3 and host.steps.replays > 0


@pytest.mark.parametrize("mode", ["window", "released"])
def test_graphed_flash_step_tracks_eager_bf16(rekv, mode):
    loaded = rekv.loaded(device="cuda", dtype="bfloat16", seed=7)
    _, eager, _ = _stream(rekv, loaded, "eager", mode, 2)
    host, graphed, _ = _stream(rekv, loaded, "graph", mode, 2)
    assert host.window.attention.kernel == "flash" and host.window.attention.compile_glue and host.steps.replays > 0
    cosine = torch.nn.functional.cosine_similarity(graphed, eager, dim=-1)
    assert cosine.min() > 0.999, cosine
    uncompiled = rekv.host(loaded, n_local=85, frames_per_chunk=2, retrieve_size=3, sink_positions=mode,
                           llm_step="graph", compile_glue=False)
    frames = rekv.video(9, seed=6)
    uncompiled.ingest(frames[:1], [0.0])
    uncompiled.ingest(frames[1:], [float(i) for i in range(1, 9)])
    plain = uncompiled.prompt_logits(QUERY)
    assert torch.nn.functional.cosine_similarity(graphed, plain, dim=-1).min() > 0.9999


@pytest.mark.parametrize("count,capacity,used,splits", [(64, 15020, 9000, 10), (7, 333, 1, 4), (196, 2000, 2000, 3)])
def test_flash_context_chunks_equal_reference(count, capacity, used, splits):
    """`SplitAttention.context`: P key chunks in one varlen call, GQA folded into the query rows, chunk
    lengths from a device `used` (some chunks empty) -> merged output equals the reference."""
    gen = torch.Generator(device="cuda").manual_seed(2)
    q = torch.randn(count, 28, 128, device="cuda", generator=gen).bfloat16()
    kv = [torch.randn(capacity, 4, 128, device="cuda", generator=gen).bfloat16() for _ in range(2)]
    new = [torch.randn(count, 4, 128, device="cuda", generator=gen).bfloat16() for _ in range(2)]
    length = torch.tensor([used], device="cuda", dtype=torch.int32)
    merged = {}
    for kernel, compiled in (("flash", False), ("flash", True), ("reference", False)):
        attention = SplitAttention(kernel, compile_glue=compiled)
        plan = attention.plan_chunks(capacity, splits, length, q.device)
        chunks = attention.context(q, *kv, 0.088, plan)
        merged[kernel, compiled] = attention.merge_chunks(chunks, [attention(q, *new, 0.088, causal=True)], torch.float32)
    torch.testing.assert_close(merged["flash", False], merged["reference", False], rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(merged["flash", True], merged["flash", False], rtol=1e-5, atol=1e-5)


def _sync_sites(run) -> list[str]:
    """Run `run()` with torch's CUDA sync debug mode on ("warn": every call that makes the host wait for
    the device - a pageable upload, a blocking copy, .item(), cudaStreamSynchronize - warns) and return
    each warning with the Python stack that caused it (innermost project frames)."""
    import traceback
    import warnings

    sites = []

    def record(message, category, filename, lineno, file=None, line=None):
        if "prototype feature" in str(message):  # the notice printed when the mode is switched on
            return
        frames = [f for f in traceback.extract_stack()[:-2] if "/site-packages/" not in f.filename]
        sites.append(f"{message} at " + " <- ".join(f"{f.filename.split('/')[-1]}:{f.lineno}" for f in frames[::-1][:5]))

    saved_mode, saved_show = torch.cuda.get_sync_debug_mode(), warnings.showwarning
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = record
            torch.cuda.set_sync_debug_mode("warn")
            run()
            torch.cuda.set_sync_debug_mode(saved_mode)
    finally:
        torch.cuda.set_sync_debug_mode(saved_mode)
        warnings.showwarning = saved_show
    return sites


@pytest.mark.parametrize("chunk", [1, 3])
def test_steady_state_ingest_never_makes_the_host_wait_for_the_gpu(rekv, chunk):
    """A per-frame host<->device sync (a pageable upload such as torch.tensor(list, device=...), a
    blocking copy, .item()) makes the host wait for the previous frame's GPU work; the GPU then idles
    while the host launches the next frame, once per sync per frame. After warm-up passes (first calls
    eager, second calls captured), a ReKV+STC stream with every stage graphed (cacher graphs, graphed
    token stage, graphed LLM steps) must ingest without any such call."""
    from stc import CacherConfig, PrunerConfig, STCConfig

    loaded = rekv.loaded(device="cuda", dtype="bfloat16")
    stc = STCConfig(cacher=CacherConfig(update_ratio=0.25, cache_interval=4, cuda_graph=True),
                    pruner=PrunerConfig(tokens_per_frame=6))
    host = rekv.host(loaded, stc=stc, n_local=300, retrieve_size=3, frames_per_chunk=chunk, device="cuda",
                     dtype="bfloat16")
    frames = rekv.video(13, seed=2)

    def stream():
        host.reset()
        host.ingest(frames, [float(i) for i in range(frames.shape[0])])

    for _ in range(3):  # eager first calls, captures, then replays
        stream()
    torch.cuda.synchronize()
    sites = _sync_sites(stream)
    assert not sites, "host waits for the GPU during ingest:\n" + "\n".join(sites)
    host.close()
