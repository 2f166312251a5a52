"""Turn texts, KV/id carry-over and M-RoPE positions against ONE stock forward over the whole history."""

import torch

from frameworks.livecc.mrope import VideoBlock, assemble, released_positions
from frameworks.protocol import Query

SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
VS, VE, PAD = 1002, 1003, 1001  # tiny config's vision start / end / video token ids


def _expected_ids(codec, turns, tokens_per_group):
    """Hand-built id history of streaming turns without commentary: [(head text, groups, tail text)]."""
    ids = []
    for head, groups, tail in turns:
        ids += codec.encode(head) + [VS] + [PAD] * (groups * tokens_per_group) + [VE] + codec.encode(tail)
    return ids


def test_streaming_turn_ids_are_the_livecc_chat_layout(lc, shared_loaded):
    host = lc.host(shared_loaded, mode="streaming")
    host.ingest(lc.video(10), [0.5 * i for i in range(10)])
    closing = "<|im_end|>\n<|im_start|>assistant\n"
    expected = _expected_ids(host.codec, [
        (SYSTEM + "Time=0.0-3.0s", 3, "Please describe the video." + closing),
        ("<|im_end|>\n<|im_start|>user\nTime=3.0-4.0s", 1, closing),
        ("<|im_end|>\n<|im_start|>user\nTime=4.0-5.0s", 1, closing),
    ], tokens_per_group=8)
    assert host.history_ids == expected
    assert host.timings.extra["turns"] == 3 and host.timings.visual_tokens_kept == 5 * 8


def test_kv_carry_over_equals_one_full_forward(lc, shared_loaded):
    """Three streamed turns with commentary (the last generated token of each turn dropped, the next turn
    opening with <|im_end|>), then a question turn with a pending 1-frame video: the logits after the
    question equal one stock forward over the whole id history with all four videos (stock M-RoPE)."""
    host = lc.host(shared_loaded, mode="streaming", commentary=True, commentary_max_new_tokens=3, keep_answers=True)
    frames = lc.video(11, seed=1)
    host.ingest(frames[:7], [0.5 * i for i in range(7)])
    host.ingest(frames[7:], [0.5 * i for i in range(7, 11)])
    assert len(host.commentary) == 3 and host.timings.extra["commentary_tokens"] == 9
    ours = host.answer_logits(Query(prompt="What happens?"))
    videos = [lc.patches(shared_loaded, frames[a:b], lc.size) for a, b in ((0, 6), (6, 8), (8, 10), (10, 11))]
    assert [g for _, g in videos] == [(3, 4, 8), (1, 4, 8), (1, 4, 8), (1, 4, 8)]
    reference = lc.stock_logits(shared_loaded, host.history_ids, videos)
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-4)
    # the history really holds generated tokens and the question (not just the video turns)
    text = host.codec.encode("What happens?<|im_end|>\n<|im_start|>assistant\nThe answer is:\n")
    assert host.history_ids[-len(text):] == text


def test_question_is_cropped_away_unless_kept(lc, shared_loaded):
    host = lc.host(shared_loaded, mode="streaming")
    frames = lc.video(9, seed=2)
    host.ingest(frames)
    before = (list(host.history_ids), host.cache.get_seq_length(), host.next_position)
    first = host.answer_logits(Query(prompt="Q1?"))
    assert (host.history_ids, host.cache.get_seq_length(), host.next_position) == before
    torch.testing.assert_close(host.answer_logits(Query(prompt="Q1?")), first, rtol=0, atol=0)
    assert host.timings.extra["turns"] == 2 and host.builder.pending().frames.shape[0] == 1
    host.ingest(frames[:1])  # the pending frame is still there: with one more it completes the next turn
    assert host.timings.extra["turns"] == 3 and host.builder.pending() is None


def test_clip_mode_equals_one_stock_forward_and_reuses_the_video_prefix(lc, shared_loaded):
    host = lc.host(shared_loaded)  # mode clip
    frames = lc.video(7, seed=4)
    host.ingest(frames[:3])
    host.ingest(frames[3:])
    ours = host.answer_logits(Query(prompt="Which one?"))
    tail = "Which one?<|im_end|>\n<|im_start|>assistant\nThe answer is:\n"
    groups = 4  # 7 frames padded to 8
    expected = host.codec.encode(SYSTEM) + [VS] + [PAD] * (groups * 8) + [VE] + host.codec.encode(tail)
    assert host.history_ids + host.last_inputs.ids == expected  # the question is cropped away afterwards
    reference = lc.stock_logits(shared_loaded, expected, [lc.patches(shared_loaded, frames, lc.size)])
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-4)
    vit_before = host.timings.vit_ms
    second = host.answer_logits(Query(prompt="Which one?"))
    assert host.timings.vit_ms == vit_before  # the [system, user, video] pre-fill was reused
    torch.testing.assert_close(second, ours, rtol=1e-5, atol=1e-5)


def test_mrope_positions_hand_computed():
    """Text t, t+1; a 3-group 1x2 video starting at s has (s+t, s+h, s+w); text after it starts at
    s + max(3, 1, 2) = s + 3 (the temporal extent counts, as in training-time get_rope_index)."""
    block = VideoBlock.full(torch.zeros(6, 4), groups=3, rows=1, cols=2)
    inputs = assemble([[7, 8], block, [9]], start=10, video_token_id=99, device=torch.device("cpu"))
    assert inputs.ids == [7, 8] + [99] * 6 + [9]
    assert inputs.positions.tolist() == [
        [10, 11, 12, 12, 13, 13, 14, 14, 15],
        [10, 11, 12, 12, 12, 12, 12, 12, 15],
        [10, 11, 12, 13, 12, 13, 12, 13, 15],
    ]
    assert inputs.next_position == 16
    kept = block.select(torch.tensor([1, 4]))  # (t0, w1) and (t2, w0): original offsets, same span
    pruned = assemble([[7, 8], kept, [9]], start=10, video_token_id=99, device=torch.device("cpu"))
    assert pruned.positions.tolist() == [[10, 11, 12, 14, 15], [10, 11, 12, 12, 15], [10, 11, 13, 12, 15]]
    assert released_positions(3, cache_length=20, first_turn_delta=-4, device=torch.device("cpu")).tolist() == [[16, 17, 18]] * 3


def test_released_mrope_switch_gives_one_dimensional_appended_turns(lc, shared_loaded):
    host = lc.host(shared_loaded, mode="streaming", mrope="released")
    host.ingest(lc.video(8))
    first_len = len(host.codec.encode(SYSTEM + "Time=0.0-3.0s")) + 1  # ... <|vision_start|>
    delta = host.first_turn_delta
    assert delta < 0  # the 24 video tokens occupy max(3, 2, 4) = 4 positions
    positions = host.last_inputs.positions
    cache_before = len(host.history_ids) - positions.shape[1]
    assert torch.equal(positions[0], torch.arange(positions.shape[1]) + cache_before + delta)
    assert torch.equal(positions[0], positions[1]) and torch.equal(positions[1], positions[2])
    assert first_len > 0
