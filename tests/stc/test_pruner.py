"""STC-Pruner: exactly k per frame, sorted, causal, bounded history, fixed channels, both strategies."""

import pytest
import torch
import torch.nn.functional as F

from stc import PrunerConfig, STCPruner
from stc.pruner.scoring import window_means


def frames(n, tokens=49, width=16, seed=0):
    return torch.randn(n, tokens, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("strategy", ["gaussian", "dual_anchor"])
def test_keeps_exactly_k_sorted_tokens_per_frame(strategy):
    feats = frames(3)
    kept, idx = STCPruner(PrunerConfig(tokens_per_frame=10, strategy=strategy)).compress(feats)
    assert kept.shape == (3, 10, 16) and idx.shape == (3, 10) and idx.dtype == torch.int64
    assert torch.all(idx[:, 1:] > idx[:, :-1])
    torch.testing.assert_close(kept, torch.stack([feats[f, idx[f]] for f in range(3)]))


@pytest.mark.parametrize("strategy", ["gaussian", "dual_anchor"])
def test_deterministic_and_batch_equals_frame_by_frame(strategy):
    """frames_per_chunk must not change which tokens are kept (scoring channels come from frame 0)."""
    feats = frames(5)
    cfg = PrunerConfig(tokens_per_frame=7, strategy=strategy)  # default channel_keep_ratio=0.5
    _, batched = STCPruner(cfg).compress(feats)
    single = STCPruner(cfg)
    one_by_one = torch.cat([single.compress(feats[i : i + 1])[1] for i in range(5)])
    assert torch.equal(batched, one_by_one)
    assert torch.equal(batched, STCPruner(cfg).compress(feats)[1])


def test_gaussian_keeps_the_token_least_like_both_anchors():
    feats = torch.ones(1, 20, 8) + 0.01 * torch.randn(1, 20, 8)
    feats[0, 13] = -torch.ones(8)  # one token pointing the other way: most novel
    _, idx = STCPruner(PrunerConfig(tokens_per_frame=1, channel_keep_ratio=1.0)).compress(feats)
    assert idx.tolist() == [[13]]


def test_dual_anchor_prefers_tokens_new_relative_to_history():
    """A token that is spatially common but new relative to the past wins with alpha=1 (temporal only)."""
    past = torch.zeros(1, 10, 4)
    past[..., 0] = 1.0
    current = torch.zeros(1, 10, 4)
    current[..., 1] = 1.0
    current[0, 4] = torch.tensor([1.0, 0.2, 0, 0])  # close to the past, so least novel temporally
    current[0, 7] = torch.tensor([0, 0, 1.0, 0])  # orthogonal to both
    pruner = STCPruner(PrunerConfig(tokens_per_frame=9, strategy="dual_anchor", alpha=1.0))
    pruner.compress(past)
    _, idx = pruner.compress(current)
    assert 4 not in idx[0].tolist()


def test_history_is_bounded_and_reset_clears_it():
    pruner = STCPruner(PrunerConfig(tokens_per_frame=4, history_window=3))
    for i in range(5):
        pruner.compress(frames(2, seed=i))
    assert pruner.history.shape[0] == 3 and pruner.frames_seen == 10
    channels = pruner.channels.clone()
    pruner.compress(frames(1, seed=99))
    assert torch.equal(pruner.channels, channels)  # scoring channels fixed per stream
    pruner.reset()
    assert pruner.history is None and pruner.channels is None and pruner.frames_seen == 0


def test_reset_makes_a_new_video_independent_of_the_previous_one():
    cfg = PrunerConfig(tokens_per_frame=5)
    video_a, video_b = frames(4, seed=1), frames(3, seed=2)
    fresh = STCPruner(cfg).compress(video_b)[1]
    reused = STCPruner(cfg)
    reused.compress(video_a)
    reused.reset()
    assert torch.equal(reused.compress(video_b)[1], fresh)


def test_window_means_are_causal_and_windowed():
    history = torch.tensor([[1.0], [2.0]])
    new = torch.tensor([[3.0], [4.0], [5.0]])
    inclusive = window_means(history, new, window=2, include_current=True)
    assert inclusive.flatten().tolist() == [2.5, 3.5, 4.5]
    exclusive = window_means(history, new, window=2, include_current=False)
    assert exclusive.flatten().tolist() == [1.5, 2.5, 3.5]
    first = window_means(torch.zeros(0, 1), torch.tensor([[7.0], [9.0]]), window=4, include_current=False)
    assert first.flatten().tolist() == [7.0, 7.0]


def test_gaussian_matches_a_direct_transcription_of_the_released_score():
    feats = frames(1, tokens=12, width=6)
    cfg = PrunerConfig(tokens_per_frame=3, channel_keep_ratio=0.5)
    _, idx = STCPruner(cfg).compress(feats)
    x = feats[0]
    channels = torch.argsort(x.var(0, unbiased=False))[:3]
    y = F.normalize(x[:, channels], dim=-1)
    anchors = [y.mean(0), F.normalize(x[:, channels].mean(0), dim=0)]
    score = sum(torch.exp(-((y - a) ** 2).sum(-1) / (2 * b)) for a in anchors for b in cfg.bandwidths)
    assert idx[0].tolist() == sorted(torch.argsort(score)[:3].tolist())


def test_grid_newline_layout_keeps_every_row_newline():
    rows, cols = 3, 4
    feats = frames(2, tokens=rows * (cols + 1), width=8)
    pruner = STCPruner(PrunerConfig(tokens_per_frame=5, layout="grid_newline", grid=(rows, cols)))
    kept, idx = pruner.compress(feats)
    assert kept.shape == (2, 5 + rows, 8) and pruner.tokens_out_per_frame == 8
    newlines = {r * (cols + 1) + cols for r in range(rows)}
    for f in range(2):
        assert newlines <= set(idx[f].tolist())
        assert torch.all(idx[f, 1:] > idx[f, :-1])


def test_bad_shapes_and_budgets_raise_clear_errors():
    with pytest.raises(ValueError, match=r"\[frames, tokens, channels\]"):
        STCPruner().compress(torch.randn(49, 16))
    with pytest.raises(ValueError, match="tokens_per_frame=64"):
        STCPruner(PrunerConfig(tokens_per_frame=64)).compress(frames(1, tokens=49))
    pruner = STCPruner(PrunerConfig(tokens_per_frame=4))
    pruner.compress(frames(1))
    with pytest.raises(ValueError, match="channel count changed"):
        pruner.compress(torch.randn(1, 49, 8))
    with pytest.raises(ValueError, match="needs 15 tokens"):
        STCPruner(PrunerConfig(tokens_per_frame=2, layout="grid_newline", grid=(3, 4))).compress(frames(1, tokens=12))
