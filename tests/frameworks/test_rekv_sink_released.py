"""ReKV `sink_positions="released"`: every query sees the init sink at the fixed distance n_local once the
stream has left the window (frameworks-benchmarks.md §A1.4); "window" keeps it just before the window.
Checked on the attention backend directly (random q/k/v, a real RotaryTable), against a per-query
reference that rotates the sink keys at (query position - n_local)."""

import pytest
import torch
from torch import nn

from frameworks.rekv.attention import prefix_causal_attention
from frameworks.rekv.backends import WindowPrefill
from frameworks.rekv.config import ReKVConfig
from frameworks.rekv.local_window import LocalWindow
from frameworks.rekv.rope import RotaryTable, apply_rotary

HQ, HKV, D, N_INIT, N_LOCAL = 4, 2, 8, 3, 10


class _Rotary(nn.Module):
    def __init__(self):
        super().__init__()
        self.inv_freq = 1.0 / (10000 ** (torch.arange(0, D, 2, dtype=torch.float64) / D))


def _window(mode):
    rope = RotaryTable(_Rotary(), torch.float64)
    window = LocalWindow(1, HKV, D, N_LOCAL, torch.float64, torch.device("cpu"), rope, sink_positions=mode)
    gen = torch.Generator().manual_seed(0)
    window.set_init(torch.randn(1, HKV, N_INIT, D, generator=gen, dtype=torch.float64),
                    torch.randn(1, HKV, N_INIT, D, generator=gen, dtype=torch.float64))
    return window, rope


def _step(window, rope, seed, num_new=4):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(h, num_new, D, generator=gen, dtype=torch.float64) for h in (HQ, HKV, HKV))
    backend = WindowPrefill(window, rope, num_new, keep_raw=False)
    positions = torch.arange(num_new) + window.next_position
    out = backend(0, q, k, v, D ** -0.5)
    window.commit(num_new)
    return out, (q, k, v, positions, backend)


def test_identical_until_the_stream_leaves_the_window():
    (w1, rope1), (w2, rope2) = _window("window"), _window("released")
    for seed in range(2):  # 8 tokens <= n_local: nothing evicted yet
        a, _ = _step(w1, rope1, seed)
        b, _ = _step(w2, rope2, seed)
        assert torch.equal(a, b)


def test_released_sink_sits_at_distance_n_local_for_every_query():
    window, rope = _window("released")
    for seed in range(4):  # 16 tokens > n_local: evicted
        _step(window, rope, seed)
    assert window.fixed_distance_sink
    keys_before = window.keys[0, :, window.start:window.end].clone()
    values_before = window.values[0, :, window.start:window.end].clone()
    out, (q, k, v, positions, backend) = _step(window, rope, 99)
    cos, sin = rope.cos_sin(positions)
    q_rot, k_rot = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    rows = []
    for i in range(q.shape[1]):  # reference: one query at a time, sink keys rotated at position p_i - n_local
        sink_cos, sink_sin = rope.cos_sin(positions[i:i + 1].repeat(N_INIT) - N_LOCAL)
        sink = apply_rotary(window.init_keys[0], sink_cos, sink_sin)
        keys = torch.cat([sink, keys_before, k_rot[:, :i + 1]], dim=1)
        values = torch.cat([window.init_values[0], values_before, v[:, :i + 1]], dim=1)
        rows.append(prefix_causal_attention(q_rot[:, i:i + 1], keys, values, D ** -0.5))
    torch.testing.assert_close(out, torch.cat(rows), rtol=1e-9, atol=1e-9)


def test_window_mode_differs_once_the_stream_is_longer_than_n_local():
    (w1, rope1), (w2, rope2) = _window("window"), _window("released")
    outs = [[_step(w, r, seed)[0] for seed in range(5)] for w, r in ((w1, rope1), (w2, rope2))]
    assert torch.equal(outs[0][1], outs[1][1]) and not torch.allclose(outs[0][4], outs[1][4])


def test_setting_is_validated():
    assert ReKVConfig().sink_positions == "window"
    with pytest.raises(ValueError, match="sink_positions"):
        ReKVConfig(sink_positions="relased")


def test_host_switch_reaches_the_window_and_a_long_stream_answers(rekv):
    """Through the real (tiny) host: both modes agree while the stream fits, the switch engages after."""
    from frameworks.protocol import Query

    loaded = rekv.loaded()
    frames = rekv.video(6)
    hosts = {mode: rekv.host(loaded, n_local=60, sink_positions=mode) for mode in ("window", "released")}
    tokens = {}
    for mode, host in hosts.items():
        host.reset()
        host.ingest(frames[:1], [0.0])
        assert not host.window.fixed_distance_sink
        host.ingest(frames[1:], [float(i) for i in range(1, 6)])
        tokens[mode] = host.answer(Query(prompt="what happens?", max_new_tokens=3))
        assert isinstance(tokens[mode], str)
    assert hosts["released"].window.fixed_distance_sink and not hosts["window"].window.fixed_distance_sink
    assert hosts["released"].window.sink_positions == "released"
