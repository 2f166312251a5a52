"""The STC-Cacher encoder-layer forward for pre-LN ViT layers (SigLIP, CLIP and same-anatomy towers).

Differences from `SiglipEncoderLayer.forward` / `CLIPEncoderLayer.forward` (transformers 5.x):
- Reference rows run the same math as upstream (LN1 -> q/k/v -> attention -> out_proj -> residual ->
  LN2 -> MLP -> residual) and additionally store keys, values, attention-branch output and
  MLP-branch output (each [T, D], before the residual add) into the stream's buffers, in place.
- Selective rows compute LN1 and keys for all T tokens, rank tokens by similarity of their key to the
  reference key, and recompute queries, values, attention (k queries over ALL T fresh keys) and the
  MLP only for the k least similar tokens. Static tokens take `h_current + A_ref + M_ref`: the branch
  outputs are reused, the residual stream is the current frame's. Values of static tokens are the
  reference values. (stc-method.md §2.4.)
- Keys are computed once (upstream computed them twice on selective frames), LN2 runs only on the k
  recomputed tokens (LayerNorm is per token, so this is exact), and static outputs are built with one
  broadcast add + one in-place scatter instead of clone-then-scatter.
- Attention runs through the configured transformers backend (`ALL_ATTENTION_FUNCTIONS`), so
  `eager`, `sdpa` and registered kernels all work; no attention weights are returned.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Optional

import torch

from stc.cacher.plan import CallPlan
from stc.cacher.selection import expand_index, select_dynamic_tokens, token_similarity


def _eager_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Plain softmax attention; [B, H, q, d] inputs -> ([B, q, H, d], None). Used when the host model
    module offers no eager function of its own."""
    weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


def attention_interface(attn_module):
    """The attention function transformers would use for this module (by `_attn_implementation`)."""
    eager = getattr(sys.modules.get(type(attn_module).__module__), "eager_attention_forward", _eager_attention)
    config = getattr(attn_module, "config", None)
    implementation = getattr(config, "_attn_implementation", None) or "eager"
    if implementation == "eager":
        return eager
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager)


def attend(attn_module, queries, keys, values, attention_mask):
    """Multi-head attention of queries [B, q, D] over keys/values [B, T, D], then out_proj -> [B, q, D]."""
    batch, q_len, width = queries.shape
    head_dim = attn_module.head_dim
    split = lambda x: x.view(batch, x.shape[1], -1, head_dim).transpose(1, 2)  # noqa: E731
    output, _ = attention_interface(attn_module)(
        attn_module,
        split(queries),
        split(keys),
        split(values),
        attention_mask,
        is_causal=False,
        scaling=attn_module.scale,
        dropout=0.0,
    )
    return attn_module.out_proj(output.reshape(batch, q_len, width).contiguous())


@dataclass
class References:
    """Reference tensors for a batch of selective rows, each [B_s, T, D] (or broadcastable [1, T, D])."""

    key: torch.Tensor
    value: torch.Tensor
    attn: torch.Tensor
    mlp: torch.Tensor
    feature: Optional[torch.Tensor]


def full_rows(layer, hidden, normed, keys, attention_mask):
    """Upstream layer math on all given rows. Returns (output, values, attn_branch, mlp_branch)."""
    attn = layer.self_attn
    queries = attn.q_proj(normed)
    values = attn.v_proj(normed)
    attn_branch = attend(attn, queries, keys, values, attention_mask)
    hidden = hidden + attn_branch
    mlp_branch = layer.mlp(layer.layer_norm2(hidden))
    return hidden + mlp_branch, values, attn_branch, mlp_branch


def selective_rows(layer, hidden, normed, keys, attention_mask, refs: References, k: int, metric: str):
    """Selective recompute of the k most changed tokens per row (stc-method.md §2.4). Returns [B_s, T, D]."""
    attn = layer.self_attn
    features = keys if refs.feature is None else normed
    reference_features = refs.key if refs.feature is None else refs.feature
    indices = select_dynamic_tokens(token_similarity(features, reference_features, metric), k)  # [B_s, k]
    index = expand_index(indices, hidden.shape[-1])  # [B_s, k, D]

    normed_dynamic = torch.gather(normed, 1, index)
    values_dynamic = attn.v_proj(normed_dynamic)
    values = refs.value.expand(hidden.shape[0], -1, -1).scatter(1, index, values_dynamic)
    mask = None
    if attention_mask is not None:
        mask = torch.gather(attention_mask, -2, indices[:, None, :, None].expand(-1, attention_mask.shape[1], -1, attention_mask.shape[-1]))
    attn_dynamic = attend(attn, attn.q_proj(normed_dynamic), keys, values, mask)

    mid = hidden + refs.attn  # static tokens: current residual + reference attention branch
    mid_dynamic = torch.gather(hidden, 1, index) + attn_dynamic
    mid.scatter_(1, index, mid_dynamic)
    out = mid + refs.mlp  # static tokens: + reference MLP branch
    out.scatter_(1, index, mid_dynamic + layer.mlp(layer.layer_norm2(mid_dynamic)))
    return out


def cached_layer_forward(layer, hidden, attention_mask, plan: CallPlan, layer_idx: int, config):
    """One encoder layer for a planned call: full rows first (they may be references for later rows of
    the same stream), then all selective rows batched together. hidden: [B, T, D] -> [B, T, D]."""
    if hidden.shape[0] != len(plan.states):
        raise RuntimeError(
            f"STC-Cacher layer {layer_idx} got {hidden.shape[0]} rows but the call was planned for "
            f"{len(plan.states)}; encoder layers must run in order within one tower call"
        )
    with_feature = config.selection_feature == "input"
    metric = config.metric
    normed = layer.layer_norm1(hidden)
    keys = layer.self_attn.k_proj(normed)
    if not plan.selective_rows:
        out, values, attn_branch, mlp_branch = full_rows(layer, hidden, normed, keys, attention_mask)
        _store(plan, layer_idx, list(range(hidden.shape[0])), keys, normed, values, attn_branch, mlp_branch)
        return out

    sel = plan.selective_rows
    if not plan.reference_rows:
        refs = _gather_references(plan, layer_idx, None, with_feature, keys, normed)
        return selective_rows(layer, hidden, normed, keys, attention_mask, refs, plan.tokens_to_update, metric)

    ref_rows = plan.reference_rows
    ref_index = torch.tensor(ref_rows, device=hidden.device)
    sel_index = torch.tensor(sel, device=hidden.device)
    mask_r = mask_s = attention_mask
    if attention_mask is not None and attention_mask.shape[0] > 1:
        mask_r, mask_s = attention_mask[ref_index], attention_mask[sel_index]
    out_r, values, attn_branch, mlp_branch = full_rows(layer, hidden[ref_index], normed[ref_index], keys[ref_index], mask_r)
    _store(plan, layer_idx, ref_rows, keys, normed, values, attn_branch, mlp_branch)
    batch_refs = (ref_rows, keys, normed, values, attn_branch, mlp_branch)
    refs = _gather_references(plan, layer_idx, batch_refs, with_feature, keys, normed)
    out_s = selective_rows(layer, hidden[sel_index], normed[sel_index], keys[sel_index], mask_s, refs, plan.tokens_to_update, metric)
    out = torch.empty_like(hidden)
    out[ref_index] = out_r
    out[sel_index] = out_s
    return out


def _store(plan, layer_idx, rows, keys, normed, values, attn_branch, mlp_branch):
    """Write the stream references of this layer in place (keys/normed indexed by batch row, the
    branch tensors by position in `rows`)."""
    position = {row: i for i, row in enumerate(rows)}
    for row, state in plan.store_rows:
        ref = state.layers[layer_idx]
        i = position[row]
        ref.key.copy_(keys[row])
        ref.value.copy_(values[i])
        ref.attn.copy_(attn_branch[i])
        ref.mlp.copy_(mlp_branch[i])
        if ref.feature is not None:
            ref.feature.copy_(normed[row])


def _gather_references(plan, layer_idx, batch_refs, with_feature, keys, normed) -> References:
    """Stack, per selective row, the reference it reads: an earlier row of this batch or the stored one."""
    parts = {"key": [], "value": [], "attn": [], "mlp": [], "feature": []}
    position = {row: i for i, row in enumerate(batch_refs[0])} if batch_refs else {}
    for row, source in zip(plan.selective_rows, plan.reference_source):
        if source is None:
            ref = plan.states[row].layers[layer_idx]
            items = (ref.key, ref.value, ref.attn, ref.mlp, ref.feature)
        else:
            _, all_keys, all_normed, values, attn_branch, mlp_branch = batch_refs
            i = position[source]
            items = (all_keys[source], values[i], attn_branch[i], mlp_branch[i], all_normed[source])
        for name, tensor in zip(parts, items):
            parts[name].append(tensor)
    if len(plan.selective_rows) == 1:
        stacked = {name: (t[0].unsqueeze(0) if t[0] is not None else None) for name, t in parts.items()}
    else:
        stacked = {name: (torch.stack(t) if t[0] is not None else None) for name, t in parts.items()}
    if not with_feature:
        stacked["feature"] = None
    return References(**stacked)
