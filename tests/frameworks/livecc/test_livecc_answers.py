"""Restricted-logit answers (17 tokens only), the streaming-EOS threshold processor, the pruner on merged
tokens (original (t, h, w) positions, never renumbered) and the cacher seam."""

import pytest
import torch

from frameworks.livecc.answers import StreamingEOSThreshold, choice_token_ids, restricted_choice
from frameworks.livecc.config import ANSWER_CHOICES
from frameworks.protocol import Query
from stc import PrunerConfig, STCPruner


def test_restricted_choice_ignores_tokens_outside_the_choices():
    logits = torch.zeros(50)
    logits[3] = 100.0  # the global argmax is not a choice
    logits[[10, 11, 12]] = torch.tensor([1.0, 5.0, 2.0])
    assert restricted_choice(logits, [10, 11, 12], ["No", "Yes", "0"]) == "Yes"


def test_choice_tokens_are_the_last_token_of_newline_choice(lc, shared_loaded):
    codec = shared_loaded.codec  # bytes: "\nYes" -> ..., "s"
    ids = choice_token_ids(codec, ANSWER_CHOICES)
    assert ids[:3] == [ord("o"), ord("s"), ord("0")] and ids[-1] == ord("E") and len(set(ids)) == 17
    with pytest.raises(ValueError, match="distinct"):
        choice_token_ids(codec, ["Yes", "yes"])  # both end in "s"


def test_host_answer_is_the_best_of_the_17_tokens(lc, shared_loaded):
    host = lc.host(shared_loaded)
    host.ingest(lc.video(4))
    query = Query(prompt="Is the door open?")
    logits = host.answer_logits(query)
    ids = host.choice_ids
    best = ANSWER_CHOICES[int(torch.argmax(logits[ids]))]
    assert int(torch.argmax(logits)) not in ids  # random weights: the unrestricted argmax is elsewhere
    assert host.answer(query) == best
    # steer the model: make the lm_head row of "C" the hidden state's direction -> "C" wins
    head = shared_loaded.model.lm_head.weight
    saved = head[ord("C")].clone()
    try:
        with torch.no_grad():
            head[ord("C")] = head[int(torch.argmax(logits))] * 3.0
        assert host.answer(query) == "C"
    finally:
        with torch.no_grad():
            head[ord("C")] = saved


def test_generate_mode_decodes_text(lc, shared_loaded):
    host = lc.host(shared_loaded, answer_mode="generate")
    host.ingest(lc.video(2))
    text = host.answer(Query(prompt="Describe.", max_new_tokens=4))
    assert isinstance(text, str) and 1 <= host.timings.extra["generated_tokens"] <= 4


def test_streaming_eos_threshold_hand_computed():
    scores = torch.log(torch.tensor([[0.3, 0.7]]))
    off = StreamingEOSThreshold(token_id=0, base_threshold=0.5, step=0.0)
    assert off(None, scores.clone())[0, 0] == -float("inf")  # p = 0.3 <= 0.5: suppressed
    keep = StreamingEOSThreshold(token_id=0, base_threshold=0.2, step=0.15)
    assert torch.isfinite(keep(None, scores.clone())[0, 0])  # call 1: threshold 0.2 < 0.3
    assert keep(None, scores.clone())[0, 0] == -float("inf")  # call 2: threshold 0.35 >= 0.3


def test_streaming_eos_processor_changes_commentary(lc, shared_loaded):
    """A threshold of 1.0 forbids the " ..." token: with it the commentary never contains that token."""
    host = lc.host(shared_loaded, mode="streaming", commentary=True, commentary_max_new_tokens=6,
                   streaming_eos_base_threshold=1.0)
    seen = []
    real_generate = host.generate

    def spy(logits, max_new_tokens, extra=()):
        out = real_generate(logits, max_new_tokens, extra)
        seen.append((list(extra), out))
        return out

    host.generate = spy
    host.ingest(lc.video(8))
    assert len(seen) == 2 and all(isinstance(e[0], StreamingEOSThreshold) for e, _ in seen)
    assert all(host.streaming_eos_id not in out for _, out in seen)


def test_pruner_keeps_original_thw_positions(lc, shared_loaded):
    """Each 2-frame group keeps k of its 8 merged tokens; their M-RoPE indices are the ORIGINAL (t, h, w)
    of those tokens (an independent pruner picks the same ones), and the text after the video continues
    exactly where the unpruned turn's does."""
    k = 3
    frames = lc.video(10, seed=5)
    dense = lc.host(shared_loaded, mode="streaming")
    pruned = lc.host(shared_loaded, {"name": "stc_pruner", "pruner": {"tokens_per_frame": k}}, mode="streaming")
    reference_pruner = STCPruner(PrunerConfig(tokens_per_frame=k))
    for start, stop, groups in ((0, 6, 3), (6, 8, 1), (8, 10, 1)):
        dense.ingest(frames[start:stop], [0.5 * i for i in range(start, stop)])
        pruned.ingest(frames[start:stop], [0.5 * i for i in range(start, stop)])
        dense_inputs, pruned_inputs = dense.last_inputs, pruned.last_inputs
        dense_video = dense_inputs.positions[:, torch.tensor(dense_inputs.ids) == 1001]
        pruned_video = pruned_inputs.positions[:, torch.tensor(pruned_inputs.ids) == 1001]
        features = dense_inputs.visual.view(groups, 8, -1)
        _, picked = reference_pruner.compress(features)
        flat = (picked + torch.arange(groups)[:, None] * 8).reshape(-1).sort().values
        assert pruned_video.shape[1] == groups * k
        assert torch.equal(pruned_video, dense_video[:, flat])
        assert not torch.equal(pruned_video, dense_video[:, :groups * k])  # not renumbered from the start
        assert pruned.next_position == dense.next_position
        torch.testing.assert_close(pruned_inputs.visual, dense_inputs.visual[flat])
    timings = pruned.timings
    assert timings.visual_tokens_in == 40 and timings.visual_tokens_kept == 5 * k and timings.pruner_ms > 0
