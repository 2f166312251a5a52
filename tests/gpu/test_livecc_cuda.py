"""GPU-only checks of the LiveCC host's Qwen2-VL tower calls (run on the H100/H200 machine: `pytest tests/gpu -q`).

Skipped on CPU machines with a visible reason; they are NOT part of the CPU coverage claims (written without
a GPU at hand: the lead runs them).
"""

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (GPU-only check)")


def _tiny_cuda(dtype=torch.float32):
    from frameworks.common.model_sizes import qwen2_vl_config
    from frameworks.livecc import build_random_livecc

    return build_random_livecc(qwen2_vl_config("tiny"), dtype=dtype, device="cuda", seed=0)


def _groups(loaded, count):
    from frameworks.livecc.video import patchify, resize_frames

    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2 * count, 70, 100, 3), generator=generator, dtype=torch.uint8)
    out = []
    for g in range(count):
        pixels = resize_frames(frames[2 * g:2 * g + 2], (56, 112), loaded.patches, torch.device("cuda"), torch.float32)
        out.append(patchify(pixels, loaded.patches)[0])
    return out


@torch.inference_mode()
def test_sync_free_call_captures_in_a_cuda_graph_and_equals_eager():
    from frameworks.livecc.vit import VisionCallArgs

    loaded = _tiny_cuda()
    visual = loaded.model.model.visual
    groups = _groups(loaded, 3)
    args = VisionCallArgs(visual, torch.device("cuda"))(1, 4, 8)
    eager = [visual(v, grid_thw=torch.tensor([[1, 4, 8]], device="cuda")).pooler_output for v in groups]
    static = groups[0].clone()
    for _ in range(2):
        visual(static, **args)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = visual(static, **args).pooler_output
    for v, expected in zip(groups, eager):
        static.copy_(v)
        graph.replay()
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@torch.inference_mode()
def test_host_cacher_graphs_really_capture_and_match_eager():
    from frameworks.common.compression import HostCompression
    from frameworks.livecc.vit import VisionCallArgs

    loaded = _tiny_cuda()
    visual = loaded.model.model.visual
    groups = _groups(loaded, 8)
    args = VisionCallArgs(visual, torch.device("cuda"))(1, 4, 8)
    results = {}
    for graphed in (False, True):
        compression = HostCompression({"name": "stc_cacher", "cacher": {"update_ratio": 0.25, "cache_interval": 4,
                                                                       "cuda_graph": graphed}}, None, host="livecc")
        compression.attach(visual)
        results[graphed] = [visual(v, **args).pooler_output.clone() for v in groups]
        runner = compression.vision_methods[0].handle.graph_runner
        if graphed:
            assert runner.enabled and runner.captures == 2 and runner.replays == 6
        compression.close()
    for eager, replayed in zip(results[False], results[True]):
        torch.testing.assert_close(replayed, eager, rtol=1e-5, atol=1e-5)
