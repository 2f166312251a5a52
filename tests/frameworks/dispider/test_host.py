"""The Dispider host against hand-built references: compressor passes and positions, grounding,
incremental == recompute-all, STC-Cacher with r=1 == no cacher, tail clips, caps and errors."""

import pytest
import torch

from frameworks.dispider import compressor as passes
from frameworks.protocol import Query

STC = {"cacher": {"update_ratio": 0.25, "cache_interval": 2}, "pruner": {"tokens_per_frame": 5}}


def _reference_clip(host, frames, start, end):
    """Pass 1 of one clip by hand: positions from the layout [text, 16 x 16 frame tokens, 16 x 4 slots, global]."""
    model = host.model
    tokens = host.frame_tokens(host.resize(frames))
    text = model.compressor.get_input_embeddings()(torch.tensor(host.compressor_codec.encode(
        f"This contains a clip sampled in {start} to {end} seconds")))
    sequence = torch.cat([text, model.pool_projector(tokens)])
    hidden = model.compressor(inputs_embeds=sequence[None]).last_hidden_state[0]
    first_slot = len(text) + 16 * 16
    return hidden[first_slot:first_slot + 16 * 4], hidden[first_slot + 16 * 4], tokens[:1]


@torch.no_grad()
def test_passes_and_reaction_input_match_a_hand_built_reference(dsp):
    host = dsp.host()
    frames = dsp.video(35)
    host.ingest(frames, dsp.seconds(35, start=2.0))  # 2 complete clips; a 3-frame tail stays out (< 8)
    query = Query(prompt="What happens?", answer_prefix="Best option: (", max_new_tokens=3)
    clips = host.answer_clips()
    assert len(clips) == 2
    refs = [_reference_clip(host, frames[0:16], 2, 17), _reference_clip(host, frames[16:32], 18, 33)]
    for clip, (memory, indicator, tokens) in zip(clips, refs):
        torch.testing.assert_close(clip.memory, memory, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(clip.indicator, indicator, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(clip.clip_tokens, tokens)

    model, codec = host.model, host.compressor_codec
    embed = model.compressor.get_input_embeddings()
    memories = torch.cat([r[0] for r in refs])
    indicators = torch.stack([r[1] for r in refs])
    hidden = model.compressor(inputs_embeds=torch.cat([memories, indicators])[None]).last_hidden_state[0]
    global_memory = hidden[-2:]
    question = embed(torch.tensor(codec.encode("What happens?") + [host.todo_id]))
    ans, todo = embed(torch.tensor([host.ans_id])), embed(torch.tensor([host.todo_id]))
    sequence = torch.cat([ans, question, memories, question, todo])
    state = model.compressor(inputs_embeds=sequence[None]).last_hidden_state[0, -1]

    chosen, ours_global = host.ground(clips, "What happens?")
    assert chosen == [0, 1]  # top-min(4, 2), in time order
    torch.testing.assert_close(ours_global, global_memory, rtol=1e-5, atol=1e-5)
    assert host.last["silent_score"] == pytest.approx(float(model.silent_head(state)), abs=1e-4)

    reaction_embed = model.reaction.get_input_embeddings()
    text = lambda s: reaction_embed(torch.tensor(host.codec.encode(s)))  # noqa: E731
    expected = torch.cat([
        text(host.settings.system_prompt + " USER: "),
        model.clip_projector(refs[0][2][0]), model.compress_projector(refs[0][0]),
        model.clip_projector(refs[1][2][0]), model.compress_projector(refs[1][0]),
        model.compress_projector(global_memory),
        text("\nWhat happens? ASSISTANT: Best option: ("),
    ])
    ours = host.reaction_input(clips, chosen, ours_global, query)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    assert isinstance(host.answer(query), str) and host.timings.extra["answers"] == 1


def test_select_clips_planted_similarities_time_order_and_counts():
    eye = torch.eye(8)
    indicators = eye[:6] * 3.0
    query = 4 * eye[4] + 3 * eye[1] + 2 * eye[5] + 1 * eye[2] + 0.5 * eye[0]
    chosen, scores = passes.select_clips(query, indicators, "streaming")
    assert chosen == [1, 2, 4, 5]
    assert scores.shape == (6,) and float(scores.sum()) == pytest.approx(1.0)
    # video QA: cos > 0.2 for clips 4, 1, 5 only (0.73, 0.55, 0.36) -> clamped up to 4
    assert passes.select_clips(query, indicators, "video_qa")[0] == [1, 2, 4, 5]
    # all six above 0.2 -> six clips; forty equal clips -> capped at 28; two clips -> both
    assert passes.select_clips(eye[:6].sum(0), indicators, "video_qa")[0] == list(range(6))
    many = torch.ones(40, 8) + 0.01 * torch.randn(40, 8)
    assert len(passes.select_clips(torch.ones(8), many, "video_qa")[0]) == 28
    assert passes.select_clips(query, indicators[:2], "streaming")[0] == [0, 1]


@torch.no_grad()
def test_host_grounding_picks_planted_clips_in_time_order(dsp):
    host = dsp.host()
    host.ingest(dsp.video(96), dsp.seconds(96))  # 6 clips
    clips = host.answer_clips()
    embed = host.model.compressor.get_input_embeddings()
    memories = torch.cat([clip.memory for clip in clips])
    ids = lambda v: torch.tensor(v)  # noqa: E731
    state = passes.question_state(host.model.compressor, embed(ids([host.ans_id])),
                                  embed(ids(host.compressor_codec.encode("where?") + [host.todo_id])),
                                  embed(ids([host.todo_id])), memories, "streaming")
    generator = torch.Generator().manual_seed(3)
    for index, clip in enumerate(clips):
        clip.indicator = torch.randn(state.shape, generator=generator)  # unrelated directions
    for index, weight in ((4, 1.0), (0, 0.9), (5, 0.8), (2, 0.7)):
        clips[index].indicator = state + (1 - weight) * 3 * torch.randn(state.shape, generator=generator)
    chosen, _ = host.ground(clips, "where?")
    assert chosen == [0, 2, 4, 5]


def _pair(dsp, compression, **settings):
    incremental = dsp.host(dsp.loaded(seed=1), compression)
    recompute = dsp.host(dsp.loaded(seed=1), compression, recompute_per_question=True, **settings)
    return incremental, recompute


@torch.no_grad()
@pytest.mark.parametrize("compression", [None, STC], ids=["plain", "stc"])
def test_incremental_equals_recompute_all(dsp, compression):
    incremental, recompute = _pair(dsp, compression)
    frames, times = dsp.video(45, seed=2), dsp.seconds(45)
    query = Query(prompt="Count?", max_new_tokens=4)
    for host in (incremental, recompute):
        host.ingest(frames[:20], times[:20])        # 1 clip + a 4-frame tail (left out)
    first = [h.answer(query) for h in (incremental, recompute)]
    for host in (incremental, recompute):
        host.ingest(frames[20:], times[20:])        # 2 clips + a 13-frame tail (joins the answer)
    a, b = incremental.answer_clips(), recompute.answer_clips()
    assert len(a) == len(b) == 3
    for x, y in zip(a, b):
        torch.testing.assert_close(x.memory, y.memory, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(x.indicator, y.indicator, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(x.clip_tokens, y.clip_tokens, rtol=1e-5, atol=1e-5)
        assert (x.start, x.end) == (y.start, y.end)
    second = [h.answer(query) for h in (incremental, recompute)]
    assert first[0] == first[1] and second[0] == second[1]
    # the incremental host encoded each clip once; the recomputing one at every question
    assert incremental.timings.extra["clips_encoded"] == 2
    assert recompute.timings.extra["clips_encoded"] > 3
    if compression:
        assert incremental.timings.vit_selective_frames > 0
        assert incremental.timings.visual_tokens_kept == 32 * 5


@torch.no_grad()
def test_cacher_with_r_1_equals_the_unpatched_host(dsp):
    plain = dsp.host(dsp.loaded(seed=4))
    cached = dsp.host(dsp.loaded(seed=4), {"cacher": {"update_ratio": 1.0, "cache_interval": 3}})
    frames, times = dsp.video(40, seed=4), dsp.seconds(40)
    for host in (plain, cached):
        host.ingest(frames, times)
    assert cached.timings.vit_selective_frames > 0  # the selective path really ran
    for x, y in zip(plain.answer_clips(), cached.answer_clips()):
        torch.testing.assert_close(x.memory, y.memory, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(x.clip_tokens, y.clip_tokens, rtol=1e-4, atol=1e-4)
    query = Query(prompt="What?", max_new_tokens=4)
    assert plain.answer(query) == cached.answer(query)
    cached.close()
    assert not type(cached.model.vision_tower.encoder.layers[0]).__name__.startswith("Stc")


@torch.no_grad()
def test_tail_clip_runs_outside_the_stc_schedule_and_caps_apply(dsp):
    host = dsp.host(compression={"cacher": {"update_ratio": 0.25, "cache_interval": 2}}, max_clips=2)
    host.ingest(dsp.video(16 * 4 + 10), dsp.seconds(16 * 4 + 10))
    host.answer(Query(prompt="q", max_new_tokens=1))
    t = host.timings
    assert t.vit_reference_frames + t.vit_selective_frames == 64  # tail frames never enter the schedule
    assert t.extra["tail_frames_encoded"] == 10
    assert t.extra["clips_cached"] == 4 and t.extra["clips_answered"] == 3  # 4 thinned to 2, plus the tail
    host.reset()
    assert host.timings.frames == 0 and host.timings.extra["clips_cached"] == 0
    host.ingest(dsp.video(3), dsp.seconds(3))  # no complete clip: the short tail is the video
    host.answer(Query(prompt="q", max_new_tokens=1))
    assert host.timings.extra["clips_answered"] == 1


@torch.no_grad()
def test_released_sampling_and_video_qa_grounding_run(dsp):
    host = dsp.host(sampling="released", grounding="video_qa")
    host.ingest(dsp.video(40), dsp.seconds(40))  # round(40 / 16) = 2 clips (2.5 rounds to even)
    host.answer(Query(prompt="q", max_new_tokens=1))
    assert host.timings.extra["clips_answered"] == 2 and host.timings.extra["clips_encoded"] == 2
    assert len(host.timings.extra["selected_clips"]) == 2


def test_bad_calls_are_clear_errors(dsp):
    host = dsp.host()
    with pytest.raises(RuntimeError, match="before any frame"):
        host.answer(Query(prompt="q"))
    with pytest.raises(ValueError, match="timestamps"):
        host.ingest(dsp.video(2), [0.0])
    with pytest.raises(ValueError, match="uint8"):
        host.ingest(torch.zeros(2, 8, 8, 3), [0.0, 1.0])


@torch.no_grad()
def test_clip_in_one_tower_call_equals_frame_by_frame_and_odd_batches_under_stc(dsp):
    """`vit_frames_per_call=16` (one CLIP call per clip, the default) is an optimisation of feeding CLIP
    frame by frame: with a reusing cacher (N=3, r=0.25: references off every call boundary) and the pruner,
    clip memories, CLIP tokens, the cacher's frame kinds and the answer equal those of 1 and of 5 frames
    per call."""
    spec = {"cacher": {"update_ratio": 0.25, "cache_interval": 3}, "pruner": {"tokens_per_frame": 11}}
    frames, times = dsp.video(37, seed=6), dsp.seconds(37)   # 2 clips + a 5-frame tail (left out)
    query = Query(prompt="Which?", max_new_tokens=3)
    runs = []
    for per_call in (16, 5, 1):
        host = dsp.host(dsp.loaded(seed=6), spec, vit_frames_per_call=per_call)
        host.ingest(frames[:23], times[:23])
        host.ingest(frames[23:], times[23:])
        runs.append((host.answer_clips(), host.compression.frame_kinds(), host.answer(query), host.timings))
        host.close()
    (clips, kinds, text, timings), others = runs[0], runs[1:]
    assert timings.vit_selective_frames > 0 and timings.visual_tokens_kept == 32 * 11
    for other_clips, other_kinds, other_text, _ in others:
        assert other_kinds == kinds and other_text == text and len(other_clips) == len(clips) == 2
        for x, y in zip(clips, other_clips):
            torch.testing.assert_close(x.clip_tokens, y.clip_tokens, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(x.memory, y.memory, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(x.indicator, y.indicator, rtol=1e-4, atol=1e-4)
