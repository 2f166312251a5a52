"""One torch CPU thread while the harness tests run (restored afterwards): the toy models gain nothing
from threads, and on a busy CI machine OpenMP barriers make each op wait for a scheduler slice."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_cpu_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
