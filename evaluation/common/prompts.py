"""The ReKV multiple-choice prompt shared by the offline benchmarks (MLVU, EgoSchema, VideoMME).

ReKV `format_mcqa_prompt` + `get_prompt`: the question text below is wrapped by the host's chat
template (Query.use_chat_template=True) and the assistant turn starts with the primer
"Best option: (" (MLVU's own scripts write "Best Option: ("; ReKV's spelling is kept).
"""

from typing import Sequence

from evaluation.common.mc import render_options

REKV_MC = "Question: {question}\nOptions:\n{options}\nOnly give the best option."
REKV_PRIMER = "Best option: ("


def rekv_mc_prompt(question: str, options: Sequence[str]) -> str:
    return REKV_MC.format(question=question, options=render_options(options, "paren_lines"))
