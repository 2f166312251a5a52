"""GPU-only checks of the StreamForest host (run on the GPU machine: `pytest tests/gpu -q`).

Skipped on CPU machines with a visible reason; they are NOT part of the CPU coverage claims. They check
that the CUDA-graphed STC-Cacher path gives the host the same memory and answer as the eager one, in the
streaming mode (one frame per call) and the reread mode (several frames per call).
"""

import pytest
import torch

from tests.videos import drifting_video

from frameworks.protocol import Query
from frameworks.streamforest import StreamForestConfig, StreamForestHost, streamforest_sizes
from frameworks.streamforest.loading import build_random

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (GPU-only check)")


def _video(count, size=40, seed=0):
    """uint8 [count, H, W, 3]: tests/videos.py `drifting_video`."""
    return drifting_video(count, size, size, seed, 6)


@pytest.mark.parametrize("protocol,batch", [("incremental", 1), ("reread", 4), ("reread", 5)])  # 5: calls of 5, 5, 2 frames, off N=4
def test_graphed_cacher_equals_eager_cacher_on_the_host(protocol, batch):
    loaded = build_random(streamforest_sizes("tiny"), "float32", "cuda", seed=1)
    frames, query = _video(12), Query(prompt="what?", max_new_tokens=3)
    results = []
    for graphed in (False, True):
        cacher = {"update_ratio": 0.25, "cache_interval": 4, "cuda_graph": graphed}
        host = StreamForestHost(loaded, StreamForestConfig(preset="tiny", dtype="float32", device="cuda",
                                                           protocol=protocol, vit_batch=batch), {"cacher": cacher})
        host.ingest(frames, [float(i) for i in range(12)])
        logits = host.answer_logits(query)
        results.append((host.memory.tokens().clone(), logits, host.timings.vit_selective_frames))
        host.close()
    (eager_tokens, eager_logits, eager_selective), (graph_tokens, graph_logits, graph_selective) = results
    assert eager_selective == graph_selective == 9
    torch.testing.assert_close(graph_tokens, eager_tokens, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(graph_logits, eager_logits, rtol=1e-3, atol=1e-3)
