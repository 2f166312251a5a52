"""ReKVHost.fill_history, the capability the speed harness uses for answer latency after a long stream:
the memory holds exactly the requested frames, the newest ones really encoded (as many as the local
window holds), and the host still answers."""

import math

import pytest

from frameworks.protocol import Query
from frameworks.registry import build_host

N_LOCAL = 60  # tiny LLaVA-OV: 25 tokens per frame -> the window holds ceil(60 / 25) + 1 = 4 frames


@pytest.fixture(scope="module")
def host():
    rekv = build_host("rekv", {"preset": "tiny", "device": "cpu", "dtype": "float32", "n_local": N_LOCAL,
                               "retrieve_size": 3})
    yield rekv
    rekv.close()


@pytest.mark.parametrize("frames", [2, 4, 30])
def test_memory_holds_the_requested_frames(host, frames):
    host.reset()
    encoded = host.fill_history(frames)
    assert encoded == min(frames, math.ceil(N_LOCAL / 25) + 1)
    timings = host.timings
    assert timings.extra["blocks"] == frames and timings.frames == encoded
    assert timings.extra["stored_bytes"] == frames * 2 * 2 * 2 * 25 * 16 * 4  # layers, K/V, kv heads, tokens, dim, fp32
    assert host.answer(Query(prompt="What happens?", max_new_tokens=2)) is not None
