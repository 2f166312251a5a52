"""How LiveCC turns next-token logits into answers and commentary.

* Restricted answers (LiveCC's OVO-Bench protocol, `evaluation/ovobench/distributed_evaluate_ovobench.py`):
  no generation; the prediction is the argmax of the next-token logits over the tokens of the 17 texts
  {No, Yes, 0-9, A-E}, each token being the LAST token of "\\n" + text as upstream tokenizes it.
* Streaming EOS (demo `infer.py`): the token of " ..." means "nothing more to say this second"; the
  threshold processor suppresses it unless its probability exceeds base + step·(calls so far).
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import LogitsProcessor


def choice_token_ids(codec, choices: Sequence[str]) -> list[int]:
    """Token id per answer text (last token of "\\n"+text); one clear error if two texts share a token."""
    ids = []
    for choice in choices:
        encoded = codec.encode("\n" + choice)
        if not encoded:
            raise ValueError(f"answer choice {choice!r} encodes to no token")
        ids.append(encoded[-1])
    if len(set(ids)) != len(ids):
        raise ValueError(f"answer choices {list(choices)} do not map to distinct tokens with this tokenizer: {ids}")
    return ids


def restricted_choice(logits: torch.Tensor, choice_ids: Sequence[int], choices: Sequence[str]) -> str:
    """The text whose token has the largest logit among `choice_ids` (logits [vocab])."""
    index = torch.as_tensor(list(choice_ids), device=logits.device)
    return choices[int(torch.argmax(logits[index]))]


class StreamingEOSThreshold(LogitsProcessor):
    """Suppress `token_id` unless softmax(scores)[token_id] > base_threshold + step · (calls so far).

    One instance per turn (the count restarts every turn, as in the demo)."""

    def __init__(self, token_id: int, base_threshold: float, step: float):
        self.token_id, self.base_threshold, self.step = token_id, base_threshold, step
        self.count = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        threshold = self.base_threshold + self.step * self.count
        low = torch.softmax(scores.float(), dim=-1)[:, self.token_id] <= threshold
        if low.any():
            scores = scores.clone()
            scores[low, self.token_id] = -float("inf")
        self.count += 1
        return scores
