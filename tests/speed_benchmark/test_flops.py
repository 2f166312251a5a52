"""FLOP model against the independently published worked values (stc-method.md §2.8,
baselines-peers.md §3.1) and hand arithmetic."""

import pytest

from speed_benchmark import flops

SIGLIP = flops.ViTShape(d=1152, m=4304, T=729, layers=26)
CLIP_L = flops.ViTShape(d=1024, m=4096, T=577, layers=24)


@pytest.mark.parametrize("r, f_sel", [(0.15, 0.217), (0.25, 0.309), (0.30, 0.355), (0.50, 0.539)])
def test_selective_fraction_matches_table(r, f_sel):
    assert flops.f_sel(SIGLIP, r) == pytest.approx(f_sel, abs=6e-4)


@pytest.mark.parametrize("r, n, frac", [(0.25, 2, 0.654), (0.25, 3, 0.539), (0.25, 4, 0.482), (0.25, 8, 0.395),
                                        (0.15, 4, 0.413), (0.50, 8, 0.597), (0.30, 4, 0.516)])
def test_average_fraction_matches_table(r, n, frac):
    assert flops.vit_fraction(SIGLIP, n, r) == pytest.approx(frac, abs=6e-4)


def test_absolute_flops_per_frame():
    assert flops.vit_layer_flops_full(SIGLIP) / 1e9 == pytest.approx(24.65, abs=0.01)
    assert SIGLIP.layers * flops.vit_layer_flops_full(SIGLIP) / 1e9 == pytest.approx(640.8, abs=0.1)


def test_clip_fractions_track_siglip():
    for n in (2, 4, 8):
        assert abs(flops.vit_fraction(CLIP_L, n, 0.25) - flops.vit_fraction(SIGLIP, n, 0.25)) < 3e-3


def test_agrees_with_stc_flop_model():
    from stc import cacher_flop_fraction, selective_fraction

    assert flops.f_sel(SIGLIP, 0.25) == pytest.approx(selective_fraction(0.25, 1152, 4304, 729))
    assert flops.vit_fraction(SIGLIP, 4, 0.25) == pytest.approx(cacher_flop_fraction(4, 0.25, 1152, 4304, 729))


def test_finite_stream_counts_references():
    # 16 frames, N=4: frames 0,4,8,12 are references -> the infinite-stream F(N,r) with the exact k=182
    assert flops.vit_stream_fraction(SIGLIP, 4, 0.25, 16) == pytest.approx(
        (4 + 12 * flops.f_sel(SIGLIP, 0.25, exact_k=True)) / 16)
    # 5 frames, N=4: two references (0 and 4) out of five
    f = flops.f_sel(SIGLIP, 0.25, exact_k=True)
    assert flops.vit_stream_fraction(SIGLIP, 4, 0.25, 5) == pytest.approx((2 + 3 * f) / 5)
    assert flops.f_sel(SIGLIP, 0.25, exact_k=True) < flops.f_sel(SIGLIP, 0.25)  # floor(182.25) = 182


def test_prefill_hand_arithmetic():
    s = flops.LLMShape(d=2, m=3, dq=2, dkv=1, layers=1)
    assert s.linear_flops_per_token == 60  # 2·(2·2·2 + 2·2·1 + 3·2·3)
    # 2 new tokens after 1 cached: 5 (query, key) pairs -> 2·60 + 4·2·5
    assert flops.prefill_flops(s, 2, 1) == 160
    # chunks: 2 frames x 1 token, one frame per call, no prompt -> (60 + 8·1) + (60 + 8·2)
    assert flops.prefill_stream_flops(s, 2, 1, 1, 0) == 144


def test_prefill_fraction_below_token_ratio_for_qwen2_7b():
    qwen = flops.LLMShape(d=3584, m=18944, dq=3584, dkv=512, layers=28)
    assert qwen.linear_flops_per_token * 28 / 1e9 == pytest.approx(13.05, abs=0.01)  # baselines-peers §3.2
    frac = flops.prefill_fraction(qwen, 16, 196, 64, 8, 16)
    assert 0.9 * 64 / 196 < frac < 64 / 196  # attention shrinks faster than the token count
