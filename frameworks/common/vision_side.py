"""Side information from the vision tower for TOKENS methods that declare `requires` (generic, no method
names): `attention` (what each patch token receives in the feature layer) and `keys` (that layer's
head-averaged keys). Computed only when asked: it re-runs one layer's attention scores eagerly.

    side = tower_side(tower, hidden_states, feature_layer, to_grid=pool_2x)   # {"attention", "keys"}
    TokenSide(grid=..., **side)
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from stc.integrations.anatomy.probe import layer_attention, tower_layers

SIDE_FIELDS = ("attention", "keys")


def tower_side(tower: nn.Module, hidden_states: Sequence[torch.Tensor], feature_layer: int,
               to_grid: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """hidden_states: the tower's `output_hidden_states` tuple (embeddings first). feature_layer: the
    index into it that the host projects (-1 = last layer). to_grid maps [F, P, C] patch maps onto the
    host's token grid (e.g. `pool_2x`). Returns attention [F, T] and keys [F, T, head_dim]."""
    if not isinstance(feature_layer, int):
        raise ValueError(f"TokenSide attention/keys need a single vision feature layer, got {feature_layer!r}")
    found = tower_layers(tower, "TokenSide attention/keys")
    index = feature_layer % len(hidden_states)
    if index == 0:
        raise ValueError("TokenSide attention/keys: feature layer 0 is the embeddings, no attention layer")
    received, keys = layer_attention(found.anatomy, found.parts[index - 1], hidden_states[index - 1],
                                     found.prefix_tokens)
    if to_grid is not None:
        received, keys = to_grid(received[..., None])[..., 0], to_grid(keys)
    return {"attention": received, "keys": keys}
