"""Answer extraction rules, each a pure function of the raw response (None = no response).

Every rule used by an official or upstream scorer lives here exactly once; benchmarks pick one by name.
All return "" when nothing can be extracted, so callers can count unanswered items.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

LETTERS = "ABCDEFGHIJ"


def option_letter(index: int) -> str:
    return LETTERS[index]


def letter_index(letter: str) -> int:
    """'A' -> 0; -1 when `letter` is not an option letter."""
    return LETTERS.find(letter) if len(letter) == 1 else -1


def letter_before_paren(response: Optional[str]) -> str:
    """ReKV `extract_characters_regex`: strip; the char before the first ')' if any, else the first char.

    With the primer "Best option: (" the model typically continues "B) ...", giving "B".
    """
    if response is None:
        return ""
    text = response.strip()
    if not text:
        return ""
    if ")" in text:
        cut = text.index(")")
        return text[cut - 1] if cut > 0 else ""
    return text[0]


def first_char(response: Optional[str], strip: bool = True) -> str:
    """StreamingBench `count.py`: the first character of the (stripped) response."""
    if response is None:
        return ""
    text = response.strip() if strip else response
    return text[0] if text else ""


def stripped(response: Optional[str]) -> str:
    """STC's copy of StreamingBench `count.py`: the whole stripped response (compared for equality)."""
    return "" if response is None else response.strip()


_VIDEOMME_PREFIXES = (
    "The best answer is", "The correct answer is", "The answer is", "The answer",
    # upstream misses two commas, so these two pairs are concatenated strings; reproduced as-is
    "The best option isThe correct option is", "Best answer:Best option:",
)


def videomme_letter(response: Optional[str]) -> str:
    """Video-MME `eval_your_results.extract_characters_regex`: drop answer prefixes; > 10 words
    without any A-D -> unanswered; else the first A-D character anywhere."""
    if response is None:
        return ""
    text = response.strip()
    for prefix in _VIDEOMME_PREFIXES:
        text = text.replace(prefix, "")
    match = re.search(r"[ABCD]", text)
    if match is None:
        return ""
    return match.group(0)


def lmms_letter(response: Optional[str], n_options: int = 4) -> str:
    """lmms-eval style MC parse: a leading "X." / "(X)" / "X)" or a standalone capital option letter."""
    if response is None:
        return ""
    valid = LETTERS[:n_options]
    text = response.strip()
    lead = re.match(rf"^\(?([{valid}])[\.\):\s]|^([{valid}])$", text)
    if lead:
        return lead.group(1) or lead.group(2)
    alone = re.search(rf"(?<![A-Za-z])([{valid}])(?![A-Za-z])", text)
    return alone.group(1) if alone else ""


def substring_hit(gold: str, response: Optional[str]) -> bool:
    """OVO-Bench MCQ / SSR / CRR rule: gold is a substring of the raw response (None -> False).

    Deliberately lenient (any "A" in the text counts for gold A), exactly as upstream.
    """
    return response is not None and gold in response


def digits(response: Optional[str]) -> str:
    """OVO-Bench REC rule: all digits of the response concatenated ("1 or 2" -> "12")."""
    return "" if response is None else "".join(re.findall(r"\d+", response))


def last_line(response: Optional[str]) -> Optional[str]:
    """STC's OVO wrapper keeps only the last line of the generated text."""
    if response is None:
        return None
    lines = response.strip().splitlines()
    return lines[-1] if lines else ""


def render_options(options: Sequence[str], style: str) -> str:
    """Option block renderers used by the prompt templates.

    "paren_lines": "(A) x\\n(B) y" (ReKV/MLVU); "dot_lines": "A. x\\nB. y"; "ovo": "A. x; B. y;"
    (one line, trailing ';'); "raw_lines": options as given, one per line (already "A. "-prefixed).
    """
    if style == "paren_lines":
        return "\n".join(f"({option_letter(i)}) {o}" for i, o in enumerate(options))
    if style == "dot_lines":
        return "\n".join(f"{option_letter(i)}. {o}" for i, o in enumerate(options))
    if style == "ovo":
        return "; ".join(f"{option_letter(i)}. {o}" for i, o in enumerate(options)) + ";"
    if style == "raw_lines":
        return "\n".join(options)
    raise ValueError(f"unknown option style {style!r}")
