"""The Qwen2 compressor's three passes and question grounding (spec §A3.2 steps 2-5).

Pass 1, per clip: [text "This contains a clip sampled in S to E seconds" ++ PoolProjector tokens].
The hidden states at the pooled-slot positions are the clip's memory tokens (frames x pool_num, 64 at
the released size); the state at the clip-global token is its indicator. A clip's sequence never
sees another clip, so memories are computed once per completed clip and reused (the released code
batches all clips of the video in one padded call per question: `clip_memories` does that too).
Pass 2, per question: [all memories ++ all indicators] -> the states at the indicator positions are
the global memory (one token per clip). Question: the state at the final `<TODO>` of
[<ANS> ++ q ++ all memories ++ q ++ <TODO>] (streaming QA) or [<ANS> ++ all memories ++ q] (video QA),
where q = the question's ids + <TODO>. Grounding: cosine similarity of that state to each indicator.
All passes read `last_hidden_state` of the stock `Qwen2Model` (plain causal attention, positions 0..L-1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ClipMemory:
    """What a completed clip leaves for later questions.

    memory: [frames * pool_num, hidden_c] compressor states at the pooled slots.
    indicator: [hidden_c] compressor state at the clip-global token.
    clip_tokens: [R, T, 4C] concatenated CLIP tokens of the clip's first frame (R=1) or all frames.
    start, end: rounded seconds of the clip's first and last frame (the pass-1 text).
    """

    memory: torch.Tensor
    indicator: torch.Tensor
    clip_tokens: torch.Tensor
    start: int
    end: int


def clip_text(start: float, end: float) -> str:
    """The released pass-1 text preceding the clip's visual tokens."""
    return f"This contains a clip sampled in {int(round(start))} to {int(round(end))} seconds"


def _hidden(compressor: nn.Module, embeds: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    return compressor(inputs_embeds=embeds, attention_mask=mask, use_cache=False).last_hidden_state


def clip_memories(compressor: nn.Module, texts: Sequence[torch.Tensor], visuals: Sequence[torch.Tensor],
                  memory_slots: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Pass 1 over several clips in one right-padded batch. `texts[i]`: [L_i, H] embedded text,
    `visuals[i]`: [P_i, H] PoolProjector output (its last `memory_slots + 1` rows are the pooled slots
    and the global token). Returns (memory [memory_slots, H], indicator [H]) per clip."""
    sequences = [torch.cat([text, visual]) for text, visual in zip(texts, visuals)]
    lengths = [len(s) for s in sequences]
    if len(sequences) == 1:
        hidden = _hidden(compressor, sequences[0][None])
    else:
        longest = max(lengths)
        padded = torch.stack([F.pad(s, (0, 0, 0, longest - len(s))) for s in sequences])
        mask = torch.zeros(len(sequences), longest, dtype=torch.long, device=padded.device)
        for row, length in enumerate(lengths):
            mask[row, :length] = 1
        hidden = _hidden(compressor, padded, mask)
    out = []
    for row, length in enumerate(lengths):
        states = hidden[row, :length]
        # clones: views would keep the whole pass-1 hidden state of every clip alive
        out.append((states[-memory_slots - 1:-1].clone(), states[-1].clone()))
    return out


def global_memory(compressor: nn.Module, memories: torch.Tensor, indicators: torch.Tensor) -> torch.Tensor:
    """Pass 2: [C * M, H] memories ++ [C, H] indicators -> the C states at the indicator positions."""
    hidden = _hidden(compressor, torch.cat([memories, indicators])[None])[0]
    return hidden[-indicators.shape[0]:]


def question_state(compressor: nn.Module, ans: torch.Tensor, question: torch.Tensor, todo: torch.Tensor,
                   memories: torch.Tensor, grounding: str) -> torch.Tensor:
    """The compressor state at the final token of the question sequence. `ans`/`todo`: [1, H] token
    embeddings; `question`: [Q, H] embedded question ids that already end with <TODO>."""
    if grounding == "streaming":
        parts = [ans, question, memories, question, todo]
    elif grounding == "video_qa":
        parts = [ans, memories, question]
    else:
        raise ValueError(f"unknown grounding {grounding!r}")
    return _hidden(compressor, torch.cat(parts)[None])[0, -1]


def select_clips(query: torch.Tensor, indicators: torch.Tensor, grounding: str, top_clips: int = 4,
                 threshold: float = 0.2, max_clips: int = 28, temperature: float = 0.1) -> tuple[list[int], torch.Tensor]:
    """Clip indices in time order, and the softmax(cos / temperature) scores over all clips.

    streaming: the top min(top_clips, C) clips by cosine similarity.
    video_qa: count = #(cos > threshold) clamped to [top_clips, max_clips]; the top min(count, C)."""
    cosine = F.normalize(indicators.float(), dim=-1) @ F.normalize(query.float(), dim=0)
    scores = torch.softmax(cosine / temperature, dim=0)
    if grounding == "streaming":
        count = top_clips
    elif grounding == "video_qa":
        count = min(max(int((cosine > threshold).sum()), top_clips), max_clips)
    else:
        raise ValueError(f"unknown grounding {grounding!r}")
    chosen = torch.topk(scores, k=min(count, cosine.shape[0])).indices
    return sorted(chosen.tolist()), scores
