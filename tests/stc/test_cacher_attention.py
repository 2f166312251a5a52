"""stc/cacher/attention.py: attention over P key parts merged by log-sum-exp equals one plain call."""

import pytest
import torch
import torch.nn.functional as F

from stc.cacher.attention import attention, key_splits
from stc.config import CacherConfig


def test_key_splits_takes_the_largest_divisor_not_above_the_wish():
    assert [key_splits(729, p) for p in (1, 2, 3, 4, 9, 10)] == [1, 1, 3, 3, 9, 9]
    assert key_splits(14, 3) == 2 and key_splits(13, 6) == 1 and key_splits(5, 99) == 5


@pytest.mark.parametrize("queries,tokens,splits", [(7, 15, 3), (5, 14, 3), (1, 49, 7), (13, 729, 9), (4, 13, 4)])
@pytest.mark.parametrize("batch", [1, 3])
def test_split_attention_equals_one_call(queries, tokens, splits, batch):
    generator = torch.Generator().manual_seed(queries * tokens + batch)
    heads, dim = 4, 72
    q = torch.randn(batch, heads, queries, dim, generator=generator, dtype=torch.float64)
    # keys and values as views of a [B, T, H*hd] projection, as the fused layers pass them
    k, v = (torch.randn(batch, tokens, heads * dim, generator=generator, dtype=torch.float64)
            .view(batch, tokens, heads, dim).transpose(1, 2) for _ in range(2))
    want = F.scaled_dot_product_attention(q, k, v, scale=0.11)
    got = attention(q, k, v, 0.11, "flash", splits)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_split_attention_merges_low_precision_parts_in_float32():
    generator = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 4, n, 64, generator=generator).to(torch.bfloat16) for n in (9, 81, 81))
    want = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), scale=0.125)
    got = attention(q, k, v, 0.125, "sdpa", 3)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, rtol=0, atol=2e-2)


@pytest.mark.parametrize("field,value", [("fused_attention", "fa3"), ("fused_key_splits", 0), ("fused_key_splits", 2.0)])
def test_bad_fused_attention_knobs_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        CacherConfig(**{field: value})


def test_the_math_fallback_returns_the_log_sum_exp_of_the_scores():
    from stc.cacher.attention import _math_with_lse
    generator = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 3, n, 8, generator=generator, dtype=torch.float64) for n in (5, 12, 12))
    out, lse = _math_with_lse(q, k, v, 0.3)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, scale=0.3), rtol=0, atol=1e-12)
    torch.testing.assert_close(lse, torch.logsumexp(q @ k.transpose(-1, -2) * 0.3, dim=-1), rtol=0, atol=1e-12)
