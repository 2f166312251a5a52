"""Static inputs of graphed passes over a variable number of tokens (the question's retrieval pass, the
answer pre-fill): the tokens right-padded to a bucket, plus device scalars the pass reads (counts,
lengths), so that one captured graph serves every length of a bucket. Pads come after every real token:
causal attention keeps them out of the real tokens' outputs."""

from __future__ import annotations

import torch


def padded_length(count: int, bucket: int) -> int:
    """`count` rounded up to a multiple of `bucket`."""
    return -(-count // bucket) * bucket


def static_inputs(hidden: torch.Tensor, padded: int, scalars: int) -> tuple[torch.Tensor, ...]:
    """Allocate only: (rows [padded, hidden] like `hidden`, uninitialised, `scalars` int64 device scalars
    [1] set to 0). The caller writes every row with `fill_rows` (and its scalars) before a run, as it does
    before every replay, so the rows are copied once per call."""
    rows = hidden.new_empty(padded, hidden.shape[1])
    return (rows, *(torch.zeros(1, dtype=torch.long, device=hidden.device) for _ in range(scalars)))


def fill_rows(rows: torch.Tensor, hidden: torch.Tensor) -> None:
    """Write `hidden` into the first rows of the static `rows`, zeros after (stale pads never linger)."""
    rows[:hidden.shape[0]].copy_(hidden)
    rows[hidden.shape[0]:].zero_()
