"""STC-Pruner split into `begin` (host) and `run` (device, state in fixed buffers) for CUDA graphs: the same
selections as the growing-history algorithm it replaced, no host state touched by `run`, plans that
repeat once the history is full (so a captured graph is reused), buffers that survive `reset()`."""

import math

import pytest
import torch

from stc import PrunerConfig, STCPruner
from stc.pruner.scoring import dual_anchor_scores, gaussian_scores, window_means


class GrowingHistoryPruner:
    """The pre-split algorithm, written out: the history is a new tensor every call (cat + slice) and the
    channels a new tensor at the first call; reference for the in-place buffers."""

    def __init__(self, cfg):
        self.cfg, self.history, self.channels = cfg, None, None

    def compress(self, features):
        cfg, k = self.cfg, self.cfg.tokens_per_frame
        grid = None
        if cfg.layout == "grid_newline":
            rows, cols = cfg.grid
            grid = (torch.arange(rows)[:, None] * (cols + 1) + torch.arange(cols)).flatten()
        scored = features if grid is None else features[:, grid]
        if cfg.strategy == "gaussian":
            if self.channels is None:
                keep = max(1, math.floor(scored.shape[-1] * cfg.channel_keep_ratio))
                variance = scored[0].float().var(dim=0, unbiased=False)
                self.channels = torch.topk(variance, keep, largest=False).indices.sort().values
            scoring = scored.index_select(-1, self.channels)
            entries = scoring.float().mean(1)
            memory = window_means(self._history(entries), entries, cfg.history_window, include_current=True)
            self._push(entries)
            local = torch.topk(gaussian_scores(scoring, memory, cfg.bandwidths), k, dim=-1, largest=False, sorted=False).indices
        else:
            entries = scored.float().mean(1)
            temporal = window_means(self._history(entries), entries, cfg.history_window, include_current=False)
            self._push(entries)
            local = torch.topk(dual_anchor_scores(scored, temporal, cfg.alpha), k, dim=-1, largest=True, sorted=False).indices
        if grid is not None:
            rows, cols = cfg.grid
            newlines = (torch.arange(rows) * (cols + 1) + cols)[None].expand(features.shape[0], -1)
            local = torch.cat([grid[local], newlines], dim=-1)
        indices = torch.sort(local, dim=-1).values
        return torch.gather(features, 1, indices[..., None].expand(-1, -1, features.shape[-1])), indices

    def _history(self, like):
        return like.new_zeros(0, like.shape[-1]) if self.history is None else self.history

    def _push(self, entries):
        merged = entries if self.history is None else torch.cat([self.history, entries])
        self.history = merged[-self.cfg.history_window:]


def stream(frames, tokens, width=12, seed=0):
    return torch.randn(frames, tokens, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("strategy", ["gaussian", "dual_anchor"])
@pytest.mark.parametrize("layout", ["flat", "grid_newline"])
@pytest.mark.parametrize("window", [1, 3])
def test_in_place_history_selects_what_the_growing_history_selected(strategy, layout, window):
    settings = dict(tokens_per_frame=5, strategy=strategy, history_window=window)
    tokens = 25
    if layout == "grid_newline":
        settings.update(layout=layout, grid=(4, 4))
        tokens = 20
    cfg = PrunerConfig(**settings)
    pruner = STCPruner(cfg)
    for video in range(2):  # a reset in between: the buffers are reused, the stream starts afresh
        pruner.reset()
        reference = GrowingHistoryPruner(cfg)
        features = stream(11, tokens, seed=video)
        first = 0
        for chunk in (3, 1, 5, 2):
            kept, indices = pruner.compress(features[first:first + chunk])
            want_kept, want_indices = reference.compress(features[first:first + chunk])
            assert torch.equal(indices, want_indices) and torch.equal(kept, want_kept)
            first += chunk
        assert torch.equal(pruner.history, reference.history)


@pytest.mark.parametrize("strategy", ["gaussian", "dual_anchor"])
def test_run_changes_only_the_state_buffers_in_place(strategy):
    pruner = STCPruner(PrunerConfig(tokens_per_frame=4, strategy=strategy, history_window=3))
    features = stream(6, 25)
    pointers = None
    for first in range(0, 6, 2):
        plan = pruner.begin(features[first:first + 2].shape, features.device)
        before = dict(vars(pruner))
        history = pruner.state_buffers()[0].clone()
        pruner.run(features[first:first + 2], plan)
        assert vars(pruner) == before  # same objects: no attribute rebound, no counter moved
        assert not torch.equal(pruner.state_buffers()[0], history)  # the history was written in place
        now = [buffer.data_ptr() for buffer in pruner.state_buffers()]
        assert pointers is None or now == pointers
        pointers = now
    pruner.reset()
    pruner.compress(features[:1])
    assert [buffer.data_ptr() for buffer in pruner.state_buffers()] == pointers  # reset keeps the buffers


def test_plans_repeat_once_the_history_is_full_and_recur_after_reset():
    pruner = STCPruner(PrunerConfig(tokens_per_frame=4, history_window=3))
    shape = (1, 25, 12)
    plans = [pruner.begin(shape, torch.device("cpu")) for _ in range(6)]
    assert [p.history for p in plans] == [0, 1, 2, 3, 3, 3]
    assert [p.choose_channels for p in plans] == [True] + [False] * 5
    assert plans[3] == plans[4] == plans[5] and len(set(plans)) == 4
    pruner.reset()
    assert [pruner.begin(shape, torch.device("cpu")) for _ in range(4)] == plans[:4]
    assert pruner.frames_seen == 4


def test_a_new_width_after_reset_allocates_new_buffers_under_a_new_generation():
    pruner = STCPruner(PrunerConfig(tokens_per_frame=4))
    first = pruner.begin((1, 25, 12), torch.device("cpu"))
    pruner.reset()
    second = pruner.begin((1, 25, 16), torch.device("cpu"))
    assert second.generation == first.generation + 1 and pruner.state_buffers()[0].shape[1] == 8
    with pytest.raises(ValueError, match="channel count changed"):
        pruner.begin((1, 25, 12), torch.device("cpu"))


def test_only_the_released_history_is_not_graph_safe():
    assert STCPruner(PrunerConfig(strategy="gaussian")).graph_safe
    assert STCPruner(PrunerConfig(strategy="dual_anchor")).graph_safe
    assert not STCPruner(PrunerConfig(strategy="gaussian_released")).graph_safe
