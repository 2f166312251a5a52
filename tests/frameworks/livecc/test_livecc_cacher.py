"""STC-Cacher on LiveCC's Qwen2-VL ViT through the host seam: the 2-frame temporal group is the schedule
unit; r=1 reproduces the unpatched ViT; the selective path really runs on non-reference groups."""

import torch

from frameworks.protocol import Query


def _turn_features(host, frames):
    """Merged visual tokens of each streamed turn ([6 frames], then 2-frame turns), in order."""
    features = []
    for start, stop in ((0, 6), (6, 8), (8, 10), (10, 12)):
        host.ingest(frames[start:stop], [0.5 * i for i in range(start, stop)])
        features.append(host.last_inputs.visual)
    return features


def test_cacher_with_r_1_equals_the_unpatched_vit_on_2_frame_groups(lc, shared_loaded):
    frames = lc.video(12, seed=8)
    dense = _turn_features(lc.host(shared_loaded, mode="streaming"), frames)
    spec = {"name": "stc_cacher", "cacher": {"update_ratio": 1.0, "cache_interval": 4}}
    host = lc.host(shared_loaded, spec, mode="streaming")
    try:
        cached = _turn_features(host, frames)
        timings = host.timings
        assert (timings.vit_reference_frames, timings.vit_selective_frames) == (2, 4)  # groups 0 and 4 of 6
        for ours, reference in zip(cached, dense):
            torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    finally:
        host.close()


def test_cacher_selective_path_runs_on_non_reference_groups(lc, shared_loaded):
    frames = lc.video(12, seed=9)
    layers = shared_loaded.model.model.visual.blocks
    original = [type(block) for block in layers]
    dense = torch.cat(_turn_features(lc.host(shared_loaded, mode="streaming"), frames)).view(6, 8, -1)
    spec = {"name": "stc", "cacher": {"update_ratio": 0.25, "cache_interval": 2}, "pruner": None}
    host = lc.host(shared_loaded, spec, mode="streaming")
    assert [type(block) for block in layers] != original
    try:
        cached = torch.cat(_turn_features(host, frames)).view(6, 8, -1)
        stats = host.compression.stats()["cacher"]
        assert (stats["reference_frames"], stats["selective_frames"]) == (3, 3)
        assert stats["tokens_per_frame"] == 32 and stats["tokens_recomputed"] == 8  # 4x8 patches, floor(32 * 0.25)
        for group in (0, 2, 4):  # references: exact
            torch.testing.assert_close(cached[group], dense[group], rtol=1e-5, atol=1e-5)
        for group in (1, 3, 5):  # selective: reused tokens change the output (not a silent dense pass)
            assert not torch.allclose(cached[group], dense[group], atol=1e-4)
        assert host.answer(Query(prompt="q")) in host.config.answer_choices
        host.reset()
        host.ingest(frames[:6])
        assert host.compression.stats()["cacher"]["reference_frames"] == 2  # a new video restarts the schedule
    finally:
        host.close()
    assert [type(block) for block in layers] == original


def test_question_frames_do_not_advance_the_cacher_schedule(lc, shared_loaded):
    """A question with one pending group runs it through the full tower (bypass) and crops it away: the
    stream's reference/selective counts and later features are as if the question never happened."""
    frames = lc.video(12, seed=10)
    spec = {"name": "stc_cacher", "cacher": {"update_ratio": 0.25, "cache_interval": 2}}
    asked, quiet = lc.host(shared_loaded, spec, mode="streaming"), None
    try:
        asked.ingest(frames[:9], [0.5 * i for i in range(9)])
        asked.answer(Query(prompt="q"))
        asked.ingest(frames[9:], [0.5 * i for i in range(9, 12)])
        asked_features, asked_kinds = asked.last_inputs.visual, asked.compression.frame_kinds()
    finally:
        asked.close()
    quiet = lc.host(shared_loaded, spec, mode="streaming")
    try:
        quiet.ingest(frames, [0.5 * i for i in range(12)])
        assert asked_kinds == quiet.compression.frame_kinds() == (3, 3)
        torch.testing.assert_close(asked_features, quiet.last_inputs.visual, rtol=1e-5, atol=1e-5)
    finally:
        quiet.close()


def _streamed_visual(host, frames, cuts):
    """Visual tokens of every turn pre-filled while `frames` arrive in the pieces `cuts` marks, in order."""
    features = []
    for start, stop in zip(cuts, cuts[1:]):
        turns = host._counts["turns"]
        host.ingest(frames[start:stop], [0.5 * i for i in range(start, stop)])
        assert host._counts["turns"] == turns + 1
        features.append(host.last_inputs.visual)
    return torch.cat(features)


def test_several_groups_per_tower_call_equal_one_group_per_call_under_stc(lc, shared_loaded):
    """One ViT call per turn (3, 2, 2 groups) is an optimisation of one call per 2-frame group: with a reusing
    cacher whose references (N=3) fall off the call boundaries and the pruner, every group's kept tokens
    and the cacher's frame kinds are the same."""
    frames = lc.video(14, seed=11)
    spec = {"name": "stc", "cacher": {"update_ratio": 0.25, "cache_interval": 3}, "pruner": {"tokens_per_frame": 5}}
    results = []
    for turn_frames, cuts in ((dict(first_turn_frames=6, turn_frames=4), (0, 6, 10, 14)),
                              (dict(first_turn_frames=2, turn_frames=2), tuple(range(0, 15, 2)))):
        host = lc.host(shared_loaded, spec, mode="streaming", **turn_frames)
        try:
            results.append((_streamed_visual(host, frames, cuts), host.compression.frame_kinds()))
        finally:
            host.close()
    (batched, kinds), (single, single_kinds) = results
    assert kinds == single_kinds == (3, 4)
    assert batched.shape == single.shape == (7 * 5, batched.shape[-1])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)
