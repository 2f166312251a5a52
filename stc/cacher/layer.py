"""The STC-Cacher encoder-layer forward for pre-LN ViT layers (SigLIP, CLIP and same-anatomy towers).

Differences from `SiglipEncoderLayer.forward` / `CLIPEncoderLayer.forward` (transformers 5.x):
- Reference rows run the same math as upstream (LN1 -> q/k/v -> attention -> out_proj -> residual ->
  LN2 -> MLP -> residual) and additionally store, in place in the stream's [T, D] buffers, the
  selection reference (keys, pre-normalised for cosine), the values, and attention-branch +
  MLP-branch output (before the residual adds; only their sum is ever read).
- Selective rows compute LN1 and keys for all T tokens, rank tokens by similarity of their key to the
  reference key, and recompute queries, values, attention (k queries over ALL T fresh keys) and the
  MLP only for the k least similar tokens. Static tokens take `h_current + A_ref + M_ref`: the branch
  outputs are reused, the residual stream is the current frame's. Values of static tokens are the
  reference values. (stc-method.md §2.4.)
- Keys are computed once (upstream computed them twice on selective frames), LN2 runs only on the k
  recomputed tokens (LayerNorm is per token, so this is exact), the output is built with one
  broadcast add + one in-place scatter instead of two clone-then-scatter passes, and the top-k
  indices are not sorted (per-token math does not depend on their order).
- Attention runs through the configured transformers backend (`ALL_ATTENTION_FUNCTIONS`), so
  `eager`, `sdpa` and registered kernels all work; no attention weights are returned.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch

from stc.cacher.plan import CallPlan
from stc.cacher.selection import expand_index, prepare_reference, select_dynamic_tokens, token_similarity


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


def attend(attn_module, attention, queries, keys, values, attention_mask):
    """Multi-head attention of queries [B, q, D] over keys/values [B, T, D], then out_proj -> [B, q, D].
    `attention` is the backend function from `attention_interface`, resolved once per handle."""
    batch, q_len, width = queries.shape
    head_dim = attn_module.head_dim
    split = lambda x: x.view(batch, x.shape[1], -1, head_dim).transpose(1, 2)  # noqa: E731
    output, _ = attention(
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
    """Reference tensors read by a batch of selective rows, each [B_s, T, D] or broadcastable [1, T, D]."""

    selection: torch.Tensor
    value: torch.Tensor
    branch_sum: torch.Tensor


def full_rows(layer, attention, hidden, normed, keys, attention_mask):
    """Upstream layer math on all given rows. Returns (output, values, attn_branch + mlp_branch)."""
    attn = layer.self_attn
    queries = attn.q_proj(normed)
    values = attn.v_proj(normed)
    attn_branch = attend(attn, attention, queries, keys, values, attention_mask)
    mid = hidden + attn_branch
    mlp_branch = layer.mlp(layer.layer_norm2(mid))
    return mid + mlp_branch, values, attn_branch + mlp_branch


def selective_rows(layer, attention, hidden, normed, keys, attention_mask, refs: References, k: int, config):
    """Selective recompute of the k most changed tokens per row (stc-method.md §2.4). Returns [B_s, T, D].

    Static tokens: h + (A_ref + M_ref). Dynamic tokens: h + A + MLP(LN2(h + A)), where A attends with
    the dynamic queries over all T fresh keys and values that are fresh for dynamic tokens only."""
    attn = layer.self_attn
    features = keys if config.selection_feature == "key" else normed
    indices = select_dynamic_tokens(token_similarity(features, refs.selection, config.metric), k)  # [B_s, k]
    index = expand_index(indices, hidden.shape[-1])  # [B_s, k, D]

    normed_dynamic = torch.gather(normed, 1, index)
    values = refs.value.expand(hidden.shape[0], -1, -1).scatter(1, index, attn.v_proj(normed_dynamic))
    mask = None
    if attention_mask is not None:
        rows = indices[:, None, :, None].expand(-1, attention_mask.shape[1], -1, attention_mask.shape[-1])
        mask = torch.gather(attention_mask.expand(hidden.shape[0], -1, -1, -1), -2, rows)
    mid_dynamic = torch.gather(hidden, 1, index) + attend(attn, attention, attn.q_proj(normed_dynamic), keys, values, mask)
    out = hidden + refs.branch_sum
    out.scatter_(1, index, mid_dynamic + layer.mlp(layer.layer_norm2(mid_dynamic)))
    return out


def cached_layer_forward(layer, hidden, attention_mask, plan: CallPlan, layer_idx: int, config, attention):
    """One encoder layer for a planned call: full rows first (they may be references for later rows of
    the same stream), then all selective rows batched together. hidden: [B, T, D] -> [B, T, D]."""
    if hidden.shape[0] != len(plan.states):
        raise RuntimeError(
            f"STC-Cacher layer {layer_idx} got {hidden.shape[0]} rows but the call was planned for "
            f"{len(plan.states)}; encoder layers must run in order within one tower call"
        )
    normed = layer.layer_norm1(hidden)
    keys = layer.self_attn.k_proj(normed)
    k = plan.tokens_to_update
    if not plan.reference_rows:  # all selective, references from the streams' buffers
        refs = stored_references(plan, layer_idx)
        return selective_rows(layer, attention, hidden, normed, keys, attention_mask, refs, k, config)
    if not plan.selective_rows:  # all reference
        out, values, branch_sum = full_rows(layer, attention, hidden, normed, keys, attention_mask)
        _store(plan, layer_idx, plan.reference_rows, keys, normed, values, branch_sum, config)
        return out

    ref_index, sel_index = plan.row_indices(hidden.device)
    mask_r = mask_s = attention_mask
    if attention_mask is not None and attention_mask.shape[0] > 1:
        mask_r, mask_s = attention_mask[ref_index], attention_mask[sel_index]
    out_r, values, branch_sum = full_rows(layer, attention, hidden[ref_index], normed[ref_index], keys[ref_index], mask_r)
    _store(plan, layer_idx, plan.reference_rows, keys, normed, values, branch_sum, config)
    refs = _mixed_references(plan, layer_idx, keys, normed, values, branch_sum, config)
    out_s = selective_rows(layer, attention, hidden[sel_index], normed[sel_index], keys[sel_index], mask_s, refs, k, config)
    out = torch.empty_like(hidden)
    out[ref_index] = out_r
    out[sel_index] = out_s
    return out


def _selection_source(keys, normed, row, config):
    return keys[row] if config.selection_feature == "key" else normed[row]


def _store(plan, layer_idx, rows, keys, normed, values, branch_sum, config):
    """Write this layer's references in place for the streams whose reference is refreshed (keys and
    normed are indexed by batch row, values/branch_sum by position in `rows`)."""
    position = {row: i for i, row in enumerate(rows)}
    for row, state in plan.store_rows:
        ref = state.layers[layer_idx]
        ref.selection.copy_(prepare_reference(_selection_source(keys, normed, row, config), config.metric))
        ref.value.copy_(values[position[row]])
        ref.branch_sum.copy_(branch_sum[position[row]])


def stored_references(plan, layer_idx) -> References:
    """References of an all-selective call, read from the streams' buffers (views when B_s = 1)."""
    refs = [plan.states[row].layers[layer_idx] for row in plan.selective_rows]
    if len(refs) == 1:
        return References(refs[0].selection[None], refs[0].value[None], refs[0].branch_sum[None])
    return References(*(torch.stack([getattr(r, name) for r in refs]) for name in ("selection", "value", "branch_sum")))


def _mixed_references(plan, layer_idx, keys, normed, values, branch_sum, config) -> References:
    """Per selective row: an earlier reference row of this batch, or the stream's stored reference."""
    position = {row: i for i, row in enumerate(plan.reference_rows)}
    parts = ([], [], [])
    for row, source in zip(plan.selective_rows, plan.reference_source):
        if source is None:
            ref = plan.states[row].layers[layer_idx]
            items = (ref.selection, ref.value, ref.branch_sum)
        else:
            selection = prepare_reference(_selection_source(keys, normed, source, config), config.metric)
            items = (selection, values[position[source]], branch_sum[position[source]])
        for bucket, tensor in zip(parts, items):
            bucket.append(tensor)
    return References(*(torch.stack(bucket) for bucket in parts))
