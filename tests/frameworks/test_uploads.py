"""frameworks/common/uploads.py on a CPU machine: CPU targets pass through unchanged, and an upload to
CUDA under graph capture is refused with a clear message (a captured copy would read a recycled pinned
staging buffer at replay). The pinned, non-blocking path itself runs in the GPU test
tests/frameworks/test_rekv_graph_cuda.py::test_steady_state_ingest_never_makes_the_host_wait_for_the_gpu."""

import pytest
import torch

from frameworks.common import uploads


def test_cpu_targets_pass_through_with_the_values_and_dtype_asked():
    out = uploads.upload([3, 1, 2], "cpu", torch.float32)
    assert out.dtype == torch.float32 and out.tolist() == [3.0, 1.0, 2.0]
    frames = torch.arange(12, dtype=torch.uint8).view(1, 2, 2, 3)
    assert torch.equal(uploads.upload_tensor(frames, torch.device("cpu")), frames)


def test_an_upload_under_graph_capture_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    with pytest.raises(RuntimeError, match="under CUDA-graph capture"):
        uploads.upload([1, 2], "cuda")
