"""Roofline floors: per-call max(FLOPs / peak, bytes / bandwidth) summed over a pass, in the row's unit.
Checked by hand on made-up peaks (no GPU needed); CPU runs have no peaks and read n/a."""

import math

import pytest
import torch

from speed_benchmark import flops
from speed_benchmark.compose import compose
from speed_benchmark.models import resolve_spec
from speed_benchmark.records import Row, RunContext
from speed_benchmark.roofline import Peaks, annotate, measure_peaks

PEAKS = Peaks(flops_per_s=1e9, bytes_per_s=1e8, gemm_size=1, copy_bytes=1)


@pytest.fixture(scope="module")
def ctx():
    cfg = compose("tiny", ["device=cpu"], out_dir="unused")
    return RunContext(cfg, resolve_spec(cfg.preset), torch.device("cpu"), torch.float32)


def _row(case, params, samples, unit="ms", higher=False):
    return Row(case, "x", "stc", "eager", params, unit, samples, higher_is_better=higher).finalize()


def test_prefill_floor_is_the_sum_of_per_call_maxima(ctx):
    row = _row("prefill", {"frames": 4, "frames_per_chunk": 2, "k": 8, "prompt_tokens": 16}, [3.0, 5.0])
    annotate([row], ctx, PEAKS)
    shape = flops.llm_shape_from_config(ctx.spec.text_config)
    weights = shape.layers * shape.linear_flops_per_token / 2 * 4  # fp32
    calls = [flops.prefill_flops(shape, 16, 16), flops.prefill_flops(shape, 16, 32)]
    expected_ms = sum(max(f / 1e9, weights / 1e8) for f in calls) * 1e3
    floor = row.extra["floor"]
    assert floor["floor"] == pytest.approx(expected_ms)
    assert floor["x_floor"] == pytest.approx(4.0 / expected_ms)  # median of the samples / floor
    assert floor["flops"] == pytest.approx(sum(calls)) and floor["bytes"] == pytest.approx(2 * weights)
    assert floor["bound"] == ("compute" if sum(calls) / 1e9 >= 2 * weights / 1e8 else "memory")


def test_vit_and_multistream_floors_count_reference_and_selective_calls(ctx):
    shape = flops.vit_shape_from_config(ctx.spec.vision_config, ctx.spec.vit_tokens)
    dense = shape.layers * flops.vit_layer_flops_full(shape)
    selective = dense * flops.f_sel(shape, ctx.cfg.stc.update_ratio, exact_k=True)
    weights = shape.layers * (4 * shape.d**2 + 2 * shape.d * shape.m) * 4
    vit = _row("vit", {"frames": 8, "N": 4, "r": 0.25}, [2.0], unit="ms/frame")
    streams = _row("multistream", {"S": 3, "frames": 8, "N": 4, "r": 0.25}, [100.0], unit="frames/s", higher=True)
    annotate([vit, streams], ctx, PEAKS)
    per_call = lambda batch: [max(batch * f / 1e9, weights / 1e8) for f in (dense, selective)]  # noqa: E731
    ref, sel = per_call(1)
    assert vit.extra["floor"]["floor"] == pytest.approx((2 * ref + 6 * sel) / 8 * 1e3)
    ref3, sel3 = per_call(3)
    fps = 3 * 8 / (2 * ref3 + 6 * sel3)
    assert streams.extra["floor"]["floor"] == pytest.approx(fps)
    assert streams.extra["floor"]["x_floor"] == pytest.approx(fps / 100.0)


def test_rows_without_a_model_and_cpu_runs_read_none(ctx):
    pruner = _row("pruner", {"frames": 4, "frames_per_chunk": 1, "k": 8}, [1.0])
    vit = _row("vit", {"frames": 4}, [1.0], unit="ms/frame")
    annotate([pruner, vit], ctx, None)
    assert pruner.extra["floor"] is None
    assert vit.extra["floor"]["floor"] is None and vit.extra["floor"]["x_floor"] is None
    assert vit.extra["floor"]["flops"] == pytest.approx(4 * ctx.spec.vision_config.num_hidden_layers
                                                        * flops.vit_layer_flops_full(
                                                            flops.vit_shape_from_config(ctx.spec.vision_config, 81)))
    assert measure_peaks(torch.device("cpu"), torch.float32) is None
    assert not math.isnan(vit.extra["floor"]["bytes"])


def test_chunked_vit_and_e2e_floors_count_ceil_frames_over_chunk_calls(ctx):
    """7 frames at 3 per call = 3 calls (the last one short counts as full: the floor stays a bound
    on the work modelled); e2e adds the pre-fill calls of 3, 3 and 1 frames after init tokens."""
    shape = flops.vit_shape_from_config(ctx.spec.vision_config, ctx.spec.vit_tokens)
    dense = shape.layers * flops.vit_layer_flops_full(shape)
    weights = shape.layers * (4 * shape.d**2 + 2 * shape.d * shape.m) * 4
    fraction = flops.vit_stream_fraction(shape, 4, 0.25, 7)
    vit_call = max(3 * dense * fraction / 1e9, weights / 1e8)
    vit = _row("vit", {"frames": 7, "frames_per_call": 3, "N": 4, "r": 0.25}, [2.0], unit="ms/frame")
    dense_vit = _row("vit", {"frames": 7, "frames_per_call": 3}, [2.0], unit="ms/frame")
    e2e = _row("e2e", {"frames": 7, "frames_per_chunk": 3, "N": 4, "r": 0.25, "k": 8}, [2.0], unit="ms/frame")
    e2e.extra["host_timings"] = [{"frames": 7, "extra": {"init_tokens": 5}}]
    annotate([vit, dense_vit, e2e], ctx, PEAKS)
    assert vit.extra["floor"]["floor"] == pytest.approx(3 * vit_call / 7 * 1e3)
    assert dense_vit.extra["floor"]["flops"] == pytest.approx(3 * 3 * dense)
    llm = flops.llm_shape_from_config(ctx.spec.text_config)
    llm_weights = llm.layers * llm.linear_flops_per_token / 2 * 4
    prefill = [flops.prefill_flops(llm, 24, 5), flops.prefill_flops(llm, 24, 29), flops.prefill_flops(llm, 8, 53)]
    expected = 3 * vit_call + sum(max(f / 1e9, llm_weights / 1e8) for f in prefill)
    assert e2e.extra["floor"]["floor"] == pytest.approx(expected / 7 * 1e3)


def test_device_kernels_keeps_device_events_with_time_longest_first():
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    from speed_benchmark.profile import _kernels, device_kernels

    def event(key, count, us, device=DeviceType.CUDA):
        return SimpleNamespace(key=key, count=count, self_device_time_total=us, device_type=device)

    events = [event("gemm", 2, 30.0), event("aten::mm", 1, 0.0, DeviceType.CPU), event("memset", 3, 0.0),
              event("flash_fwd", 1, 45.5), event("cpu op with time", 1, 9.0, DeviceType.CPU)]
    rows = device_kernels(events)
    assert rows == [{"kernel": "flash_fwd", "calls": 1, "us": 45.5}, {"kernel": "gemm", "calls": 2, "us": 30.0}]
    assert _kernels(events) == (3, 75.5)
