"""frameworks/common/chunk_pipeline.py on CPU: the sequential path, and the two-stream protocol with the
torch.cuda calls recorded (which stream each half runs on, the event between them, the joins at the end,
also when a chunk fails). The GPU equality of pipelined and sequential ReKV ingest is
tests/gpu/test_rekv_pipeline_cuda.py."""

import contextlib

import pytest
import torch

from frameworks.common import chunk_pipeline
from frameworks.common.chunk_pipeline import ChunkPipeline


def test_disabled_or_off_cuda_runs_each_chunk_through_both_halves_in_order():
    log = []
    for pipeline in (ChunkPipeline("cpu", enabled=True), ChunkPipeline("cuda", enabled=False)):
        log.clear()
        assert not pipeline.enabled
        pipeline.run(range(3), lambda c: log.append(("produce", c)) or c * 10, lambda item: log.append(("consume", item)))
        assert log == [("produce", 0), ("consume", 0), ("produce", 1), ("consume", 10), ("produce", 2), ("consume", 20)]


@pytest.fixture
def recorded_cuda(monkeypatch):
    log, active = [], ["caller"]

    class Stream:
        def __init__(self, name):
            self.name = name

        def wait_stream(self, other):
            log.append((self.name, "wait_stream", other.name))

        def wait_event(self, event):
            log.append((self.name, "wait_event", event.name))

    class Event:
        count = 0

        def __init__(self):
            Event.count += 1
            self.name = f"ready{Event.count}"

        def record(self, stream):
            log.append((stream.name, "record", self.name))

    made = iter(["front", "back"])
    caller = Stream("caller")
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: Stream(next(made)))
    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: caller)

    @contextlib.contextmanager
    def use(stream):
        active.append(stream.name)
        try:
            yield
        finally:  # as torch.cuda.stream's exit: the previous stream comes back, also on an error
            active.pop()

    monkeypatch.setattr(torch.cuda, "stream", use)
    monkeypatch.setattr(chunk_pipeline, "_tensors", lambda item: iter(()))  # CPU tensors: nothing to record
    return log, active


def test_two_streams_produce_on_one_consume_on_the_other_and_join_the_caller(recorded_cuda):
    log, active = recorded_cuda
    pipeline = ChunkPipeline("cuda", enabled=True)
    pipeline.run(range(2), lambda c: log.append((active[-1], "produce", c)) or c,
                 lambda item: log.append((active[-1], "consume", item)))
    assert log == [
        ("front", "wait_stream", "caller"), ("back", "wait_stream", "caller"),
        ("front", "produce", 0), ("front", "record", "ready1"), ("back", "wait_event", "ready1"), ("back", "consume", 0),
        ("front", "produce", 1), ("front", "record", "ready2"), ("back", "wait_event", "ready2"), ("back", "consume", 1),
        ("caller", "wait_stream", "front"), ("caller", "wait_stream", "back"),
    ]
    log.clear()
    pipeline.run([5], lambda c: c, lambda item: None)  # the streams are made once per pipeline
    assert ("front", "wait_stream", "caller") in log and active == ["caller"]


def test_a_failing_chunk_still_joins_the_caller_stream(recorded_cuda):
    log, active = recorded_cuda

    def consume(item):
        if item == 1:
            raise ValueError("bad chunk")

    with pytest.raises(ValueError, match="bad chunk"):
        ChunkPipeline("cuda", enabled=True).run(range(3), lambda c: c, consume)
    assert log[-2:] == [("caller", "wait_stream", "front"), ("caller", "wait_stream", "back")]
    assert active == ["caller"]


def test_every_tensor_the_producer_returns_is_found_for_the_consumer_stream():
    a, b, c = torch.zeros(1), torch.ones(2), torch.full((3,), 2.0)
    found = list(chunk_pipeline._tensors((a, [b, {"x": c}], None, 3)))
    assert [t.shape for t in found] == [a.shape, b.shape, c.shape]
