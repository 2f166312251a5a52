"""GPU-only: the fused layers' attention kernels (stc/cacher/attention.py) at SigLIP-so400m shapes, and the
fused cacher with key-split attention against the eager cacher. Skipped on CPU machines."""

import pytest
import torch
import torch.nn.functional as F

from stc import CacherConfig, attach_cacher
from stc.cacher.attention import attention
from stc.config import FUSED_ATTENTION_KERNELS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (GPU-only check)")


@pytest.mark.parametrize("splits", [1, 3, 9])
@pytest.mark.parametrize("kernel", FUSED_ATTENTION_KERNELS)
@torch.inference_mode()
def test_each_kernel_and_key_split_matches_float32_attention(kernel, splits):
    generator = torch.Generator(device="cuda").manual_seed(splits)
    batch, heads, dim = 2, 16, 72
    q = torch.randn(batch, heads, 182, dim, device="cuda", generator=generator).to(torch.bfloat16)
    k, v = (torch.randn(batch, 729, heads * dim, device="cuda", generator=generator).to(torch.bfloat16)
            .view(batch, 729, heads, dim).transpose(1, 2) for _ in range(2))
    want = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), scale=dim**-0.5)
    got = attention(q, k, v, dim**-0.5, kernel, splits)
    assert got.dtype == torch.bfloat16 and got.shape == want.shape
    torch.testing.assert_close(got.float(), want, rtol=0, atol=1.5e-2)
    compiled = torch.compile(attention, fullgraph=True, dynamic=False)
    torch.testing.assert_close(compiled(q, k, v, dim**-0.5, kernel, splits).float(), got.float(), rtol=0, atol=1e-2)


@pytest.mark.parametrize("kernel,splits", [("flash", 3), ("efficient", 9)])
@torch.inference_mode()
def test_fused_cacher_with_split_attention_equals_eager(kernel, splits):
    """float32 (the half-precision kernels fall back to "efficient"): compiled selective layers whose
    attention runs over 3 or 9 key parts, graphed, equal the eager cacher one frame per call."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    config = SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=3, num_attention_heads=16,
                                image_size=384, patch_size=14)
    model = SiglipVisionModel(config).eval().to("cuda", torch.float32)
    generator = torch.Generator(device="cuda").manual_seed(0)
    frames = [torch.randn(1, 3, 384, 384, device="cuda", generator=generator)]
    for _ in range(6):
        frames.append(frames[-1] + 0.2 * torch.randn(1, 3, 384, 384, device="cuda", generator=generator))
    eager = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=3))
    expected = [model(pixel_values=f).last_hidden_state for f in frames]
    eager.detach()
    fused = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=3, fused=True, cuda_graph=True,
                                              fused_attention=kernel, fused_key_splits=splits))
    got = [model(pixel_values=f).last_hidden_state for f in frames]
    assert not fused.fused.failed and fused.fused.calls["selective"] > 0, fused.fused.calls
    assert fused.graph_runner.replays > 0
    for i, (e, g) in enumerate(zip(expected, got)):
        torch.testing.assert_close(g, e, rtol=2e-3, atol=2e-3, msg=lambda m: f"frame {i}: {m}")
