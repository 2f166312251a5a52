"""The CUDA-graph runner's capture re-runs the call it just ran eagerly; before each re-run every stream
must be put back exactly as it was before the call (stc/cacher/graph.py). Run on CPU with the
torch.cuda calls replaced by no-ops, so the capture's re-runs execute eagerly and the plan the graph
would hold can be inspected. Regression: only the frame counter was rewound, so a stream whose first
frame is off its refresh grid (phase != 0) re-ran that frame as SELECTIVE (it now had a reference) and
the graph stored under the "reference frame" key replayed a selective frame (wrong rows on the GPU)."""

import contextlib

import pytest
import torch

from stc import CacherConfig, attach_cacher
from stc.cacher.graph import CudaGraphRunner
from tests.stc.families import TOWERS


@pytest.fixture
def cuda_calls_off(monkeypatch):
    class Stream:
        def __init__(self, *args, **kwargs):
            pass

        def wait_stream(self, other):
            pass

    class Graph:
        def replay(self):
            raise AssertionError("not replayed in this test")

    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "graph", lambda graph, pool=None: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: "pool")
    monkeypatch.setattr(CudaGraphRunner, "_graphable", lambda self, pixel_values, args: self.enabled and not args)


@pytest.mark.parametrize("phase,chunk", [(2, 3), (3, 1), (1, 5)])
@torch.inference_mode()
def test_capture_reruns_the_call_from_the_state_before_it(cuda_calls_off, phase, chunk):
    family = TOWERS["siglip"]
    torch.manual_seed(0)
    model = family.build()
    units = family.frames(chunk + 2, drift=0.2)
    eager = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=4))
    with eager.use(eager.new_stream(phase=phase)):
        expected = family.encode(model, units[:chunk])
        expected_next = family.encode(model, units[chunk:chunk + 2])
    eager.detach()

    handle = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=4, cuda_graph=True))
    stream = handle.new_stream(phase=phase)
    with handle.use(stream):
        got = family.encode(model, units[:chunk])  # eager call, then the capture re-runs it
        runner = handle.graph_runner
        assert runner.enabled and runner.captures == 1
        (key, captured), = runner._graphs.items()
        assert key[1][0] is True, "first frame after a reset is a reference frame"
        assert captured.plan.modes == key[1]
        # the stream continues from the state after the call, not after the capture's re-runs
        assert stream.frame_idx == chunk and stream.has_reference
        assert stream.stats.reference_frames == sum(key[1]) and stream.stats.selective_frames == chunk - sum(key[1])
        got_next = family.encode(model, units[chunk:chunk + 2])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(got_next, expected_next, rtol=0, atol=1e-12)
    handle.detach()


@torch.inference_mode()
def test_a_failed_capture_sets_the_stream_back_and_falls_back_to_eager(cuda_calls_off, monkeypatch):
    """A capture whose end fails (torch.cuda.graph's exit raises before it leaves the capture stream):
    the runner sets the caller's stream back, synchronises, warns once and runs eagerly from then on,
    with the streams as after the eager call."""
    calls = []
    caller = object()
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: caller)
    monkeypatch.setattr(torch.cuda, "set_stream", lambda stream: calls.append(("set_stream", stream)))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(("synchronize",)))

    @contextlib.contextmanager
    def failing_graph(graph, pool=None):
        yield
        raise RuntimeError("operation failed due to a previous error during capture")

    monkeypatch.setattr(torch.cuda, "graph", failing_graph)
    family = TOWERS["siglip"]
    torch.manual_seed(0)
    model = family.build()
    units = family.frames(5, drift=0.2)
    eager = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=2))
    with eager.use(eager.new_stream()):
        expected = torch.cat([family.encode(model, units[i:i + 1]) for i in range(5)])
    eager.detach()
    handle = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=2, cuda_graph=True))
    stream = handle.new_stream()
    with handle.use(stream), pytest.warns(UserWarning, match="capture failed"):
        got = torch.cat([family.encode(model, units[i:i + 1]) for i in range(5)])
    runner = handle.graph_runner
    assert not runner.enabled and runner.captures == 0 and not runner._graphs
    assert calls == [("set_stream", caller), ("synchronize",)]
    assert stream.frame_idx == 5
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    handle.detach()
