"""Per-frame token budgets and the counters every baseline reports.

One rule for every method with a per-frame budget k: 1 <= k <= tokens per frame, checked when the host
is built (`tokens_out`) and reported as one line naming the knob (`compression.<name>.tokens_per_frame`).
"""

from __future__ import annotations

from dataclasses import dataclass


def check_positive(name: str, field: str, value: int) -> None:
    """Config-time check (no host needed): a budget must be a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"compression.{name}.{field}={value!r}: must be an integer >= 1")


def check_budget(name: str, budget: int, tokens_in: int, field: str = "tokens_per_frame") -> int:
    """Host-time check: the budget fits in a frame of `tokens_in` tokens. Returns the budget."""
    check_positive(name, field, budget)
    if budget > tokens_in:
        raise ValueError(f"compression.{name}.{field}={budget} exceeds the {tokens_in} tokens per frame of this host")
    return budget


@dataclass
class TokenCounts:
    """tokens_in / tokens_kept over a stream (reset per video)."""

    tokens_in: int = 0
    tokens_kept: int = 0
    frames: int = 0

    def add(self, frames: int, tokens_in: int, tokens_kept: int) -> None:
        self.frames += frames
        self.tokens_in += tokens_in
        self.tokens_kept += tokens_kept

    def as_dict(self) -> dict:
        return {"frames": self.frames, "tokens_in": self.tokens_in, "tokens_kept": self.tokens_kept}
