"""`strategy="gaussian_released"`: the released pruner's history, transcribed from stc-method.md §3.2
(unbounded running mean of per-call chunk means, channel subset re-chosen per call in top-k order)."""

import math

import pytest
import torch
import torch.nn.functional as F

from stc import PrunerConfig, STCPruner
from stc.config import STCConfig


def _released_reference(calls, k, ratio=0.5, bandwidths=(0.125, 0.25, 0.5, 1.0, 2.0)):
    """A direct transcription of the released loop: one chunk per call, history never bounded."""
    history, kept = [], []
    for x in calls:  # x [F, T, D]
        flat = x.reshape(-1, x.shape[-1])
        channels = torch.topk(flat.var(0, unbiased=False), math.floor(x.shape[-1] * ratio), largest=False).indices
        y = x[..., channels]
        history.append(y.mean(dim=(0, 1)))
        memory = F.normalize(torch.stack(history).mean(0), dim=0)
        unit = F.normalize(y, dim=-1)
        out = []
        for f in range(x.shape[0]):
            anchor = unit[f].mean(0)
            score = sum(torch.exp(-((unit[f] - a) ** 2).sum(-1) / (2 * b)) for a in (anchor, memory) for b in bandwidths)
            out.append(sorted(torch.topk(score, k, largest=False).indices.tolist()))
        kept.append(out)
    return kept


def test_matches_the_released_loop_over_a_long_stream():
    gen = torch.Generator().manual_seed(0)
    calls = [torch.randn(1, 30, 12, generator=gen) * (1 + i % 3) for i in range(80)]  # longer than history_window=64
    pruner = STCPruner(PrunerConfig(tokens_per_frame=6, strategy="gaussian_released"))
    ours = [pruner.compress(x)[1].tolist() for x in calls]
    assert ours == _released_reference(calls, 6)
    assert len(pruner.released_history) == 80  # unbounded
    pruner.reset()
    assert pruner.released_history == []


def test_differs_from_the_fixed_history_once_the_window_is_exceeded():
    gen = torch.Generator().manual_seed(1)
    calls = [torch.randn(1, 30, 12, generator=gen) * (1 + (i // 10) % 4) for i in range(100)]
    fixed = STCPruner(PrunerConfig(tokens_per_frame=6, strategy="gaussian", history_window=8))
    released = STCPruner(PrunerConfig(tokens_per_frame=6, strategy="gaussian_released", history_window=8))
    differ = sum(fixed.compress(x)[1].tolist() != released.compress(x)[1].tolist() for x in calls)
    assert differ > 0  # the switch really switches


def test_strategy_name_is_validated():
    with pytest.raises(ValueError, match="strategy"):
        PrunerConfig(strategy="gaussian_relased")


def test_from_env_unset_ratio_is_the_released_default():
    """Released `initialize_from_env`: STC_UPDATE_TOKEN_RATIO unset -> r = 1.0 (not the dataclass 0.25)."""
    assert STCConfig.from_env({"STC_PATCH_VISION": "1"}).cacher.update_ratio == 1.0
    assert STCConfig.from_env({"STC_PATCH_VISION": "1"}).cacher.cache_interval == 2
    assert STCConfig.from_env({"STC_PATCH_VISION": "1", "STC_UPDATE_TOKEN_RATIO": "0.25"}).cacher.update_ratio == 0.25
    assert STCConfig.from_env({"STC_PATCH_VISION": "1"}, update_ratio=0.3).cacher.update_ratio == 0.3
    assert STCConfig.from_env({}).cacher is None and STCConfig.from_env({}).pruner is None
