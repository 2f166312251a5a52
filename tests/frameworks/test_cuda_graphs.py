"""The hosts' shared capture protocol (frameworks/common/cuda_graphs.py), on CPU with the torch.cuda
calls replaced by recorders: warm-ups run the step and restore the state after each, the recording runs
inside the graph context and the state is restored once more; a failure sets the stream back,
synchronises, restores and re-raises. (Real captures are exercised by the GPU tests of each runner.)"""

import contextlib

import pytest
import torch

from frameworks.common import cuda_graphs


@pytest.fixture
def fake_cuda(monkeypatch):
    log = []

    class Stream:
        def __init__(self, device=None):
            self.name = "side"

        def wait_stream(self, other):
            log.append(f"{self.name} waits")

    class Graph:
        def pool(self):
            return "pool"

    @contextlib.contextmanager
    def on_stream(stream):
        log.append("on side")
        yield

    @contextlib.contextmanager
    def recording(graph, pool=None):
        log.append(f"record pool={pool}")
        yield
        log.append("recorded")

    current = Stream()
    current.name = "current"
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: current)
    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "stream", on_stream)
    monkeypatch.setattr(torch.cuda, "graph", recording)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "set_stream", lambda stream: log.append(f"set {stream.name}"))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append("sync"))
    return log


def test_warmups_restore_after_each_run_and_after_the_recording(fake_cuda):
    state = {"counter": 0}

    def step():
        state["counter"] += 1
        fake_cuda.append(f"step {state['counter']}")
        return state["counter"]

    def restore():
        state["counter"] = 0
        fake_cuda.append("restore")

    graph, out = cuda_graphs.capture(step, restore, torch.device("cpu"), pool="p", warmups=2)
    assert out == 1 and state["counter"] == 0
    assert fake_cuda == ["side waits", "on side", "step 1", "restore", "step 1", "restore", "current waits",
                         "record pool=p", "step 1", "recorded", "restore"]


def test_a_failing_capture_sets_the_stream_back_restores_and_reraises(fake_cuda):
    calls = []

    def step():
        calls.append(1)
        if len(calls) == 3:  # the recorded run fails (e.g. a host sync under capture)
            raise RuntimeError("operation not permitted when stream is capturing")

    with pytest.raises(RuntimeError, match="capturing"):
        cuda_graphs.capture(step, lambda: fake_cuda.append("restore"), torch.device("cpu"))
    assert fake_cuda[-4:] == ["record pool=None", "set current", "sync", "restore"]


def test_graph_table_captures_on_the_second_call_keeps_the_newest_and_shares_one_pool():
    table = cuda_graphs.GraphTable("test runner", limit=2)
    pools = []

    class Graph:
        def pool(self):
            return "pool"

    def record(name):
        def run(pool):
            pools.append(pool)
            return Graph(), f"entry {name}"
        return run

    got = [table.get(key, record(key)) for key in ("a", "a", "a", "b", "c", "b", "c", "a", "a")]
    assert got == [None, "entry a", "entry a", None, None, "entry b", "entry c", "entry a", "entry a"]
    assert pools == [None, "pool", "pool", "pool"]      # a, b, c, then a again after being dropped
    assert list(table.entries) == ["c", "a"] and table.captures == 4


def test_graph_table_failure_warns_once_and_disables():
    table = cuda_graphs.GraphTable("test runner", limit=4)

    def failing(pool):
        raise RuntimeError("operation not permitted when stream is capturing")

    assert table.get("k", failing) is None
    with pytest.warns(RuntimeWarning, match="test runner not graphed .*capturing"):
        assert table.get("k", failing) is None
    assert not table.enabled and table.captures == 0
    assert table.get("k", lambda pool: pytest.fail("a disabled table captures nothing")) is None
    off = cuda_graphs.GraphTable("off", limit=4, enabled=False)
    assert [off.get("k", failing) for _ in range(3)] == [None] * 3


def test_failure_text_names_the_error_a_failed_capture_exit_hides():
    def failing_capture():
        try:
            raise RuntimeError("operation not permitted when stream is capturing\nmore detail")
        finally:
            raise RuntimeError("operation failed due to a previous error during capture")

    try:
        failing_capture()
    except RuntimeError as error:
        text = cuda_graphs.failure_text(error)
    assert text == ("RuntimeError: operation failed due to a previous error during capture; "
                    "first error: RuntimeError: operation not permitted when stream is capturing")
    assert cuda_graphs.failure_text(ValueError("plain")) == "ValueError: plain"


@pytest.mark.parametrize("fails", [False, True])
def test_the_garbage_collector_is_paused_only_while_recording(fake_cuda, fails):
    """A collection mid-recording could finalise CUDA objects of earlier work (illegal CUDA calls while a
    stream captures): the recorded step runs with gc off; warm-ups run with it on; gc is back on after,
    whether the recording succeeded or raised."""
    import gc

    seen = []

    def step():
        seen.append(gc.isenabled())
        if fails and len(seen) == 3:
            raise RuntimeError("recording failed")

    assert gc.isenabled()
    with pytest.raises(RuntimeError) if fails else contextlib.nullcontext():
        cuda_graphs.capture(step, lambda: None, torch.device("cpu"))
    assert seen == [True, True, False] and gc.isenabled()
