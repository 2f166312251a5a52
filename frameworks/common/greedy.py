"""Greedy decoding from input embeddings on a stock HF causal LM, with its own KV cache.

Hosts that splice visual tokens into a prompt (Dispider's reaction LLM, LiveCC-style hosts) pre-fill
`inputs_embeds` once and then feed one token per step. Written out instead of `generate(inputs_embeds=...)`
so no generation config of a checkpoint
(sampling, repetition penalty) changes the greedy rule.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


@torch.no_grad()
def greedy_from_embeds(lm: nn.Module, embeds: torch.Tensor, max_new_tokens: int, eos_ids: Sequence[int]) -> list[int]:
    """Token ids generated greedily after `embeds` ([L, H]), stopping at any of `eos_ids` (not returned)
    or after `max_new_tokens`."""
    if embeds.ndim != 2 or embeds.shape[0] == 0:
        raise ValueError(f"greedy_from_embeds needs a non-empty [L, H] prompt, got {tuple(embeds.shape)}")
    out = lm(inputs_embeds=embeds[None], use_cache=True, logits_to_keep=1)
    cache, eos, ids = out.past_key_values, set(int(i) for i in eos_ids), []
    embed = lm.get_input_embeddings()
    for step in range(max_new_tokens):
        token = int(torch.argmax(out.logits[0, -1]))
        if token in eos:
            break
        ids.append(token)
        if step + 1 == max_new_tokens:
            break
        step_input = embed(torch.tensor([[token]], device=embeds.device))
        out = lm(inputs_embeds=step_input, past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
    return ids
