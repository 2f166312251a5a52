"""Static inputs of the padded graphed passes (frameworks/rekv/padded_inputs.py)."""

import torch

from frameworks.rekv.padded_inputs import fill_rows, padded_length, static_inputs


def test_allocated_rows_hold_hidden_then_zeros_once_filled_and_stale_pads_are_cleared():
    long = torch.arange(1.0, 16.0).view(5, 3)
    rows, count, blocks = static_inputs(long, padded_length(5, 4), scalars=2)
    assert rows.shape == (8, 3) and rows.dtype == long.dtype
    assert count.tolist() == [0] and blocks.tolist() == [0] and count.dtype == torch.long
    fill_rows(rows, long)
    assert rows.tolist() == long.tolist() + [[0.0] * 3] * 3
    short = -torch.ones(2, 3)
    fill_rows(rows, short)  # a shorter input on the same static rows: the old rows 2..4 become pads
    assert rows.tolist() == [[-1.0] * 3] * 2 + [[0.0] * 3] * 6
