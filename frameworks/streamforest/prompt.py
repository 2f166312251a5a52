"""The text around StreamForest's visual tokens: Qwen2 ChatML turn, time message, answer primer.

Released layout (lmms-eval `streamforest.py`, conv template `qwen_2`): the user turn is
`<image>` + "\\n" + time message + " " + question, where the single `<image>` placeholder is replaced by
all memory tokens. With the `short_online_v2` time message:

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\n<VISUAL>\\n
    \\nThe video contains N frames sampled from the past D seconds ago (t0s of the entire video) up to the
    present moment (t1s of the entire video). {question}<|im_end|>\\n<|im_start|>assistant\\n{answer_prefix}

Timestamps are rounded to 0.1 s first, as upstream formats `round(index / fps, 1)`.
"""

from __future__ import annotations

from typing import Sequence

from frameworks.streamforest.config import ASSISTANT_SUFFIX, SYSTEM_PREFIX


def time_message(timestamps: Sequence[float], style: str = "short_online_v2") -> str:
    """The sentence that tells the model how many frames over which span it sees ("" for style "none")."""
    if style == "none" or not timestamps:
        return ""
    first, last = round(float(timestamps[0]), 1), round(float(timestamps[-1]), 1)
    return (f"\nThe video contains {len(timestamps)} frames sampled from the past {last - first:.1f} seconds ago "
            f"({first:.1f}s of the entire video) up to the present moment ({last:.1f}s of the entire video).")


def prompt_halves(question: str, timestamps: Sequence[float], style: str, answer_prefix: str = "") -> tuple[str, str]:
    """(text before the visual tokens, text after them)."""
    message = time_message(timestamps, style)
    user = "\n" + (message + " " if message else "") + question
    return SYSTEM_PREFIX, user + ASSISTANT_SUFFIX + answer_prefix
