"""GPU-only: ReKV ingest with `pipeline_ingest` (vision half of chunk i+1 on a second CUDA stream,
overlapping the pre-fill of chunk i; frameworks/common/chunk_pipeline.py) gives the same block store,
prompt logits and answers as the sequential ingest, bit for bit: plain and with STC (graphed cacher +
pruner), 1 and 3 frames per call (3 does not divide the 14 frames), graphed steps and token stage.

Run on the GPU machine: `python -m pytest -q tests/gpu/test_rekv_pipeline_cuda.py`. Skipped on CPU machines."""

import pytest
import torch

from frameworks.protocol import Query
from stc import CacherConfig, PrunerConfig, STCConfig
from tests.frameworks.conftest import make_host, tiny_loaded, video

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (GPU-only check of pipelined ingest)"),
]

QUERY = Query(prompt="what moves on the left?", retrieval_text="what moves on the left?", max_new_tokens=4)


@pytest.mark.parametrize("frames_per_chunk", [1, 3])
@pytest.mark.parametrize("with_stc", [False, True])
def test_pipelined_ingest_equals_sequential_ingest(with_stc, frames_per_chunk):
    loaded = tiny_loaded(seed=5, device="cuda", dtype="bfloat16", num_hidden_layers=4)
    stc = (STCConfig(cacher=CacherConfig(update_ratio=0.25, cache_interval=3, cuda_graph=True),
                     pruner=PrunerConfig(tokens_per_frame=6)) if with_stc else None)
    frames = video(14, seed=4)
    results = {}
    for pipelined in (False, True):
        host = make_host(loaded, stc=stc, dtype="bfloat16", device="cuda", n_local=60, retrieve_size=4,
                         page_blocks=3, frames_per_chunk=frames_per_chunk, pipeline_ingest=pipelined)
        assert host.pipeline.enabled == pipelined
        for start in (0, 5, 9):  # several ingest calls: the streams join and restart between them
            host.ingest(frames[start:{0: 5, 5: 9, 9: 14}[start]])
        count = host.store.num_blocks
        every = torch.arange(count)
        pages = torch.cat([torch.cat([x.flatten() for x in host.store.gather(layer, every)])
                           for layer in range(host.store.num_layers)]).cpu()
        results[pipelined] = (count, pages, host.prompt_logits(QUERY), host.answer(QUERY), host.timings.frames)
        host.close()
    (count0, pages0, logits0, text0, frames0), (count1, pages1, logits1, text1, frames1) = results[False], results[True]
    assert count0 == count1 == 14 and frames0 == frames1 == 14
    assert torch.equal(pages0, pages1)
    assert torch.equal(logits0, logits1)
    assert text0 == text1
