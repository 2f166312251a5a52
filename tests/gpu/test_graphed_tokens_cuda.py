"""GPU-only checks of the CUDA-graphed token stage (projector -> 2x pool -> TOKENS methods,
frameworks/common/graphed_tokens.py): replays equal the eager stage bit for bit over streams with resets
and unaligned chunks, graphs are really captured and replayed, a capture failure falls back to eager with
one warning, and the ReKV host's logits do not change with `graph_token_stage`.

Run on the GPU machine: `PYTHONPATH=. python -m pytest -q tests/gpu/test_graphed_tokens_cuda.py`.
Skipped on CPU machines with a visible reason; NOT part of the CPU coverage claims.
"""

import warnings
from dataclasses import dataclass

import pytest
import torch

from frameworks.common.compression import HostCompression
from frameworks.common.graphed_tokens import GraphedTokenStage
from frameworks.common.llava_video import pool_2x
from frameworks.common.timing import EventTimer
from stc.compression import TokenMethod, TokenSide
from tests.frameworks.conftest import make_host, tiny_loaded, video

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (GPU-only check)")

# unaligned chunks; single-frame runs long enough that the pruner's history fills and keys recur
CHUNKS = (1, 1, 3, 1, 1, 1, 2, 1, 1, 1, 5, 1, 1, 1)


def projector_7b(dtype):
    from transformers.models.llava_onevision.modeling_llava_onevision import LlavaOnevisionMultiModalProjector

    from frameworks.common.model_sizes import llava_onevision_config

    torch.manual_seed(0)
    return LlavaOnevisionMultiModalProjector(llava_onevision_config("7b")).to("cuda", dtype).eval()


def run_stream(stage, selected, grid, videos=2):
    """Outputs of every call of `videos` streams (a reset before each) at CHUNKS."""
    outputs = []
    for _ in range(videos):
        stage.compression.reset()
        first = 0
        for chunk in CHUNKS:
            outputs.append(stage(selected[first:first + chunk], TokenSide(grid=grid, frame_offset=first)))
            first += chunk
    return outputs


def assert_bitwise(got, want):
    assert len(got) == len(want)
    for (tokens, indices), (want_tokens, want_indices) in zip(got, want):
        assert torch.equal(tokens, want_tokens)
        assert (indices is None and want_indices is None) or torch.equal(indices, want_indices)


@pytest.mark.parametrize("spec", [None, {"pruner": {"tokens_per_frame": 7, "history_window": 2}},
                                  {"pruner": {"tokens_per_frame": 6, "strategy": "dual_anchor", "history_window": 3}}])
@torch.inference_mode()
def test_tiny_fp32_replays_equal_eager_bit_for_bit(spec):
    loaded = tiny_loaded(device="cuda")
    projector = loaded.model.model.multi_modal_projector
    vision = loaded.model.config.vision_config
    selected = torch.randn(sum(CHUNKS), (vision.image_size // vision.patch_size) ** 2, vision.hidden_size,
                           device="cuda", generator=torch.Generator(device="cuda").manual_seed(0))
    stages = [GraphedTokenStage(projector, pool_2x, HostCompression(spec, 25), EventTimer("cuda"), graph=graph)
              for graph in (True, False)]
    graphed, eager = (run_stream(stage, selected, (5, 5)) for stage in stages)
    assert_bitwise(graphed, eager)  # every output kept to the end: a replay never overwrote an earlier one
    stage = stages[0]
    assert stage.enabled and stage.captures > 0 and stage.replays > 0
    assert stages[1].graph_calls == stages[1].captures == 0
    assert stage.compression.stats() == stages[1].compression.stats()
    graph_stage = "pruner" if spec else "projector"
    assert stage.timer.totals()[graph_stage] > 0


@torch.inference_mode()
def test_llava_ov_7b_sizes_in_bf16_replay_equal_eager():
    projector = projector_7b(torch.bfloat16)
    spec = {"pruner": {"tokens_per_frame": 64, "history_window": 4}}
    selected = torch.randn(sum(CHUNKS), 729, 1152, device="cuda", dtype=torch.bfloat16,
                           generator=torch.Generator(device="cuda").manual_seed(1))
    stages = [GraphedTokenStage(projector, pool_2x, HostCompression(spec, 196), EventTimer("cuda"), graph=graph)
              for graph in (True, False)]
    graphed, eager = (run_stream(stage, selected, (14, 14)) for stage in stages)
    assert_bitwise(graphed, eager)
    assert stages[0].captures > 0 and stages[0].replays > 0


@dataclass(frozen=True)
class _NoSettings:
    pass


class _SyncingMethod(TokenMethod):
    """Declares itself graph-safe but reads a tensor value on the host: its capture must fail."""

    name = "syncing"
    config_class = _NoSettings
    graph_safe = True

    def compress(self, tokens, side):
        return (tokens * 2 if bool((tokens.abs().sum() > 0).item()) else tokens), None


def test_capture_failure_warns_once_and_runs_eager():
    """In a child process: a capture broken by a host sync leaves PyTorch's CUDA RNG in a capture state
    (later random init on CUDA fails with "Offset increment outside graph capture"), which would poison
    every later test of this process."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.run([sys.executable, "-c", "import tests.gpu.test_graphed_tokens_cuda as t; t._capture_failure_check()"],
                           cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-3000:]


@torch.inference_mode()
def _capture_failure_check():
    loaded = tiny_loaded(device="cuda")
    projector = loaded.model.model.multi_modal_projector
    compression = HostCompression(None, 25)
    compression.methods.append(_SyncingMethod(_NoSettings()))
    stage = GraphedTokenStage(projector, pool_2x, compression, EventTimer("cuda"), graph=True)
    selected = torch.randn(6, 81, projector.linear_1.in_features, device="cuda")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outputs = [stage(selected[i:i + 1], TokenSide()) for i in range(6)]
    assert sum("capture failed" in str(w.message) for w in caught) == 1
    assert not stage.enabled and stage.captures == 0
    for i, (tokens, _) in enumerate(outputs):
        torch.testing.assert_close(tokens, pool_2x(projector(selected[i:i + 1])) * 2, rtol=0, atol=0)


@torch.inference_mode()
def test_rekv_host_logits_equal_with_the_graph_on_and_off():
    from frameworks.protocol import Query

    loaded = tiny_loaded(device="cuda")
    spec = {"pruner": {"tokens_per_frame": 9, "history_window": 2}}
    frames, query = video(9, seed=3), Query(prompt="what happens?", max_new_tokens=3)
    results = []
    for graph in (True, False):
        host = make_host(loaded, spec, n_local=10_000, frames_per_chunk=1, device="cuda", graph_token_stage=graph)
        for _ in range(2):
            host.reset()
            host.ingest(frames)
        results.append((host.prompt_logits(query), host.answer(query), host.timings.extra["token_stage"]))
        host.close()
    (logits_on, answer_on, stats_on), (logits_off, answer_off, stats_off) = results
    assert torch.equal(logits_on, logits_off) and answer_on == answer_off
    assert stats_on["graphed"] and stats_on["captures"] > 0 and stats_on["replays"] > 0
    assert stats_off == {"graphed": False, "captures": 0, "replays": 0}
