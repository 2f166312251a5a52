"""The token stage object (projector -> 2x pool -> TOKENS methods, frameworks/common/graphed_tokens.py) on
CPU: its eager path is the hosts' plain path, its split (plans + device half, with the capture's
warm-up/restore protocol) gives the same tokens, CPU never tries a graph, and the ReKV host answers
the same with `graph_token_stage` on and off. The CUDA replays: tests/gpu/test_graphed_tokens_cuda.py."""

import pytest
import torch

from frameworks.common.compression import HostCompression
from frameworks.common.graphed_tokens import GraphedTokenStage
from frameworks.common.llava_video import pool_2x
from frameworks.common.timing import EventTimer
from frameworks.protocol import Query
from stc.compression import TokenSide

SPECS = {
    "none": None,
    "pruner": {"pruner": {"tokens_per_frame": 7, "history_window": 3}},
    "pruner_dual_anchor": {"pruner": {"tokens_per_frame": 6, "strategy": "dual_anchor", "history_window": 2}},
}
CHUNKS = (3, 1, 5, 1, 2)


def features(loaded, frames, seed):
    """Random tower features [frames, 81, C] of the tiny model (9x9 patches, pooled to 5x5 = 25 tokens)."""
    vision = loaded.model.config.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2
    return torch.randn(frames, patches, vision.hidden_size, generator=torch.Generator().manual_seed(seed))


def plain(projector, compression, selected, offset):
    """What the ReKV host did before the token stage existed: projector, pool_2x, compress_tokens."""
    tokens = pool_2x(projector(selected))
    if not compression.token_methods:
        return tokens, None
    return compression.compress_tokens(tokens, TokenSide(grid=(5, 5), frame_offset=offset))


def assert_same(got, want):
    assert torch.equal(got[0], want[0])
    assert (got[1] is None and want[1] is None) or torch.equal(got[1], want[1])


@pytest.mark.parametrize("name", sorted(SPECS))
@torch.no_grad()
def test_eager_stage_equals_the_plain_host_path_over_streams_at_unaligned_chunks(rekv, name):
    loaded = rekv.loaded()
    projector = loaded.model.model.multi_modal_projector
    timer = EventTimer("cpu")
    stage = GraphedTokenStage(projector, pool_2x, HostCompression(SPECS[name], 25), timer, graph=True)
    for video in range(2):
        stage.compression.reset()
        reference = HostCompression(SPECS[name], 25)
        selected, first = features(loaded, sum(CHUNKS), seed=video), 0
        for chunk in CHUNKS:
            side = TokenSide(grid=(5, 5), frame_offset=first)
            assert_same(stage(selected[first:first + chunk], side), plain(projector, reference, selected[first:first + chunk], first))
            first += chunk
        assert stage.compression.stats() == reference.stats()
    assert stage.graph_calls == stage.captures == stage.replays == 0  # CPU: the graph path is never tried
    stages = set(timer.totals())
    assert stages == ({"projector", "pruner"} if SPECS[name] else {"projector"})


@pytest.mark.parametrize("name", sorted(SPECS))
@torch.no_grad()
def test_split_path_with_warmups_and_restores_equals_the_plain_path(rekv, name):
    """The graph path minus the graph: plans from `begin_tokens`, two warm-up runs of the device half with
    the state buffers restored after each (what a capture does), then the run whose result is used."""
    loaded = rekv.loaded()
    projector = loaded.model.model.multi_modal_projector
    stage = GraphedTokenStage(projector, pool_2x, HostCompression(SPECS[name], 25), EventTimer("cpu"))
    assert stage.compression.tokens_graph_safe
    for video in range(2):
        stage.compression.reset()
        reference = HostCompression(SPECS[name], 25)
        selected, first = features(loaded, sum(CHUNKS), seed=10 + video), 0
        for chunk in CHUNKS:
            x, side = selected[first:first + chunk], TokenSide(grid=(5, 5), frame_offset=first)
            plans = stage.compression.begin_tokens((chunk, 25, projector.linear_2.out_features), x.device, side)
            buffers = stage.compression.token_state_buffers()
            saved = [buffer.clone() for buffer in buffers]
            for _ in range(2):
                stage._device_half(x, side, plans)
                for buffer, value in zip(buffers, saved):
                    buffer.copy_(value)
            assert_same(stage._device_half(x, side, plans), plain(projector, reference, x, first))
            first += chunk
        assert stage.compression.stats() == reference.stats()


@torch.no_grad()
def test_graph_bookkeeping_captures_on_the_second_sighting_of_a_key_and_replays_with_its_plans(rekv):
    """The graph path's control flow on CPU, with CUDA stood in for: "capture" keeps the key's plans and
    "replay" re-runs the device half with those plans on the stage's state buffers (what a graph replay
    does). Hand-counted for history_window=2 at one frame per call: stream 1 learns the shape (call 1),
    sees h=1 and h=2 (calls 2-3), captures h=2 at call 4; stream 2 sees h=0, captures h=1 (seen in
    stream 1), replays h=2."""
    loaded = rekv.loaded()
    projector = loaded.model.model.multi_modal_projector
    spec = {"pruner": {"tokens_per_frame": 7, "history_window": 2}}
    stage = GraphedTokenStage(projector, pool_2x, HostCompression(spec, 25), EventTimer("cpu"))
    captured_plans = {}

    def capture(key, selected, side, plans):
        captured_plans[key] = plans
        stage._graphs[key] = None
        stage.captures += 1

    def replay(key, selected):
        stage.replays += 1
        return stage._device_half(selected.clone(), TokenSide(), captured_plans[key])

    stage._graphable, stage._capture, stage._replay = (lambda selected: True), capture, replay
    reference = HostCompression(spec, 25)
    selected = features(loaded, 8, seed=5)
    for frames in (range(5), range(5, 8)):
        stage.compression.reset()
        reference.reset()
        for f in frames:
            side = TokenSide(grid=(5, 5), frame_offset=f)
            assert_same(stage(selected[f:f + 1], side), plain(projector, reference, selected[f:f + 1], f))
    assert (stage.graph_calls, stage.captures, stage.replays) == (8, 2, 4)
    assert sorted(plans[0].history for plans in captured_plans.values()) == [1, 2]
    assert stage.compression.stats() == reference.stats()


@pytest.mark.parametrize("spec, safe", [
    (None, True),
    ({"pruner": {"tokens_per_frame": 7}}, True),
    ({"pruner": {"tokens_per_frame": 7, "strategy": "dual_anchor"}}, True),
    ({"pruner": {"tokens_per_frame": 7, "strategy": "gaussian_released"}}, False),  # a growing Python list
    ({"random_drop": {"tokens_per_frame": 7}}, False),  # CPU generator, copied to the device per call
    ({"vidcom2": {"tokens_per_frame": 7}}, False),  # .tolist() of the frame budgets
    ({"visionzip": {"tokens_per_frame": 7}}, False),  # needs tower attention (side information)
    ({"dycoke_ttm": {}}, False),  # a variable count per frame
])
def test_which_token_stages_may_be_graphed(spec, safe):
    assert HostCompression(spec, 25).tokens_graph_safe is safe


@torch.no_grad()
def test_rekv_host_gives_the_same_logits_and_answer_with_the_graph_switch_on_and_off(rekv):
    loaded = rekv.loaded(seed=2)
    spec = {"pruner": {"tokens_per_frame": 9, "history_window": 2}}
    frames, query = rekv.video(7, seed=2), Query(prompt="what happens?", max_new_tokens=3)
    results = []
    for graph in (True, False):
        host = rekv.host(loaded, spec, n_local=10_000, frames_per_chunk=3, graph_token_stage=graph)
        for _ in range(2):  # a reset in between
            host.reset()
            host.ingest(frames[:4])
            host.ingest(frames[4:])
        results.append((host.prompt_logits(query), host.answer(query), host.timings))
        host.close()
    (logits_on, answer_on, timings_on), (logits_off, answer_off, timings_off) = results
    assert torch.equal(logits_on, logits_off) and answer_on == answer_off
    assert timings_on.visual_tokens_kept == timings_off.visual_tokens_kept == 7 * 9
    assert timings_on.pruner_ms > 0 and timings_on.extra["token_stage"] == {"graphed": False, "captures": 0, "replays": 0}


def test_token_stage_speed_script_cpu_smoke(tmp_path):
    """scripts/gpu/token_stage_speed.py's CPU path (eager rows only): every row measured, files written."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "gpu" / "token_stage_speed.py"
    spec = importlib.util.spec_from_file_location("token_stage_speed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.run(module.parse_args(["--out", str(tmp_path), "--preset", "tiny", "--device", "cpu", "--dtype",
                                           "float32", "--frames", "3", "--warm", "2", "--repeats", "1", "--chunks", "1,2"]))
    assert set(report["rows"]) == {f"{name} c={c}" for name in ("none", "pruner k=8", "pruner dual_anchor k=8") for c in (1, 2)}
    assert all(row["eager"]["wall_ms_per_frame"] > 0 and "graph" not in row for row in report["rows"].values())
    assert json.loads((tmp_path / "token_stage_speed.json").read_text())["rows"].keys() == report["rows"].keys()
    assert "| pruner k=8 | 2 |" in (tmp_path / "token_stage_speed.md").read_text()
