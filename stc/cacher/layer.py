"""The STC-Cacher encoder-layer forward, for every ViT family with an anatomy adapter
(`stc/integrations/anatomy/`: SigLIP/CLIP, DINOv2, Qwen2-VL vision blocks).

Differences from the upstream layer forward:
- Reference rows run the same math as upstream (norm1 -> q/k/v -> attention -> out -> residual ->
  norm2 -> MLP -> residual, with the family's rotary and layer scales) and additionally store, in
  place in the stream's [T, D] buffers, the selection reference (keys, pre-normalised for cosine),
  the values, and attention-branch + MLP-branch output (before the residual adds; only their sum is
  ever read).
- Selective rows compute norm1 and keys for all T tokens, rank tokens by similarity of their key to
  the reference key, and recompute queries, values, attention (k queries over ALL T fresh keys) and
  the MLP only for the k least similar tokens. Static tokens take `h_current + A_ref + M_ref`: the
  branch outputs are reused, the residual stream is the current frame's. Values of static tokens are
  the reference values. (stc-method.md §2.4.)
- Keys are computed once (upstream computed them twice on selective frames), norm2 runs only on the k
  recomputed tokens (it is per token, so this is exact), the output is built with one broadcast add +
  one in-place scatter, and the top-k indices are not sorted (per-token math does not depend on order).
- `CacherConfig.reuse` selects what static tokens reuse: "both" (the method: A_ref + M_ref), or the
  paper's Table-4 ablations "attention" (A_ref reused, MLP recomputed for every token) and "mlp"
  (attention for every token, M_ref reused). The stored `branch_sum` buffer holds the reused branch.
- Within one call, every row reads references from rows BEFORE it (or the stream's stored reference,
  read before this call overwrites it), so a call of several frames equals feeding them one by one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from stc.cacher.plan import CallPlan
from stc.cacher.selection import expand_index, prepare_reference, select_dynamic_tokens, token_similarity


@dataclass
class References:
    """Reference tensors read by a batch of selective rows, each [B_s, T, D] or broadcastable [1, T, D]."""

    selection: torch.Tensor
    value: torch.Tensor
    branch_sum: torch.Tensor


def full_rows(anatomy, parts, rows, hidden, normed, keys, mask, reuse: str = "both"):
    """Upstream layer math on all given rows. Returns (output, values, reused branch): the branch
    output(s) static tokens will reuse, A + M ("both", the method), A ("attention") or M ("mlp")."""
    values = anatomy.values(parts, normed)
    attn_branch = anatomy.attention_branch(parts, anatomy.queries(parts, normed, rows), keys, values, mask, rows)
    mid = hidden + attn_branch
    mlp_branch = anatomy.mlp_branch(parts, mid)
    if reuse == "attention":
        return mid + mlp_branch, values, attn_branch
    if reuse == "mlp":
        return mid + mlp_branch, values, mlp_branch
    return mid + mlp_branch, values, attn_branch + mlp_branch


def dynamic_indices(features, reference, k: int, config, prefix_tokens: int = 0) -> torch.Tensor:
    """[B, k] indices of the tokens to recompute: the k least similar to the reference; with
    `config.recompute_prefix`, the first `prefix_tokens` (CLS, registers) are always among them."""
    scores = token_similarity(features, reference, config.metric)
    if config.recompute_prefix and prefix_tokens:
        scores = scores.clone()
        scores[:, :prefix_tokens] = float("-inf")
    return select_dynamic_tokens(scores, k)


def selective_rows(anatomy, parts, rows, hidden, normed, keys, mask, refs: References, k: int, config, prefix_tokens=0):
    """Selective recompute of the k most changed tokens per row (stc-method.md §2.4). Returns [B_s, T, D].

    Static tokens: h + (A_ref + M_ref). Dynamic tokens: h + A + MLP(LN2(h + A)), where A attends with
    the dynamic queries over all T fresh keys and values that are fresh for dynamic tokens only."""
    features = keys if config.selection_feature == "key" else normed
    indices = dynamic_indices(features, refs.selection, k, config, prefix_tokens)  # [B_s, k]
    index = expand_index(indices, hidden.shape[-1])  # [B_s, k, D]

    normed_dynamic = torch.gather(normed, 1, index)
    values = refs.value.expand(hidden.shape[0], -1, -1).scatter(1, index, anatomy.values(parts, normed_dynamic))
    row_mask = None
    if mask is not None:
        picked = indices[:, None, :, None].expand(-1, mask.shape[1], -1, mask.shape[-1])
        row_mask = torch.gather(mask.expand(hidden.shape[0], -1, -1, -1), -2, picked)
    if config.reuse == "mlp":  # ablation: attention for every token, MLP reused for static tokens
        values = anatomy.values(parts, normed)
        mid = hidden + anatomy.attention_branch(parts, anatomy.queries(parts, normed, rows), keys, values, mask, rows)
        mid_dynamic = torch.gather(mid, 1, index)
        out = mid + refs.branch_sum
        out.scatter_(1, index, mid_dynamic + anatomy.mlp_branch(parts, mid_dynamic))
        return out
    queries = anatomy.queries(parts, normed_dynamic, rows, indices)
    mid_dynamic = torch.gather(hidden, 1, index) + anatomy.attention_branch(parts, queries, keys, values, row_mask, rows)
    if config.reuse == "attention":  # ablation: attention reused for static tokens, MLP for every token
        mid = (hidden + refs.branch_sum).scatter(1, index, mid_dynamic)
        return mid + anatomy.mlp_branch(parts, mid)
    out = hidden + refs.branch_sum
    out.scatter_(1, index, mid_dynamic + anatomy.mlp_branch(parts, mid_dynamic))
    return out


def cached_layer_forward(anatomy, parts, rows, plan: CallPlan, layer_idx: int, config, prefix_tokens: int = 0):
    """One encoder layer for a planned call, on rows [B, T, D] -> [B, T, D]: all reference rows as ONE
    batched dense pass, then all selective rows as ONE batched selective pass (each row reads its own
    reference: an earlier reference row of this call, or its stream's stored one, picked by index),
    then the stores of this call's references (after every read, so a row never sees a reference that
    comes after it)."""
    hidden, mask = rows.hidden, rows.mask
    if hidden.shape[0] != len(plan.states):
        raise RuntimeError(
            f"STC-Cacher layer {layer_idx} got {hidden.shape[0]} rows but the call was planned for "
            f"{len(plan.states)}; encoder layers must run in order within one tower call"
        )
    index, pool = plan.index, plan.bank.layer(layer_idx)  # pool: [3, slots, T, D]
    normed = anatomy.norm1(parts, hidden)
    keys = anatomy.keys(parts, normed, rows)
    if not plan.reference_rows:  # all selective, references from the streams' slots
        return _selective(anatomy, parts, rows, hidden, normed, keys, mask, stored_references(plan, layer_idx), plan,
                          config, prefix_tokens)
    if not plan.selective_rows:  # all reference
        out, values, branch_sum = full_rows(anatomy, parts, rows, hidden, normed, keys, mask, config.reuse)
        _store(pool, index, _selection_source(keys, normed, config), values, branch_sum, config)
        return out

    ref_index, sel_index = index.ref_rows, index.sel_rows
    pick_r = lambda t: t.index_select(0, ref_index)  # noqa: E731
    pick_s = lambda t: t.index_select(0, sel_index)  # noqa: E731
    mask_r = mask_s = mask
    if mask is not None and mask.shape[0] > 1:
        mask_r, mask_s = pick_r(mask), pick_s(mask)
    normed_r, keys_r = pick_r(normed), pick_r(keys)
    out_r, values, branch_sum = full_rows(anatomy, parts, rows, pick_r(hidden), normed_r, keys_r, mask_r, config.reuse)
    selection = prepare_reference(_selection_source(keys_r, normed_r, config), config.metric)  # once per reference row
    refs = _mixed_references(pool, index, selection, values, branch_sum)
    out_s = _selective(anatomy, parts, rows, pick_s(hidden), pick_s(normed), pick_s(keys), mask_s, refs, plan, config,
                       prefix_tokens)
    _store(pool, index, selection, values, branch_sum, config, prepared=True)  # after every read of the old ones
    out = torch.empty_like(hidden)
    out.index_copy_(0, ref_index, out_r)
    out.index_copy_(0, sel_index, out_s)
    return out


def _selective(anatomy, parts, rows, hidden, normed, keys, mask, refs: References, plan, config, prefix_tokens):
    if plan.uniform_tokens:
        return selective_rows(anatomy, parts, rows, hidden, normed, keys, mask, refs, plan.tokens_to_update, config,
                              prefix_tokens)
    return _selective_by_tokens(anatomy, parts, rows, hidden, normed, keys, mask, refs, plan, config, prefix_tokens)


def _selective_by_tokens(anatomy, parts, rows, hidden, normed, keys, mask, refs: References, plan, config, prefix_tokens):
    """`selective_rows` for selective rows that recompute different k (adaptive update ratio): one
    batched call per distinct k, same math per row. Inputs are indexed by position among the
    selective rows ([B_s, ...]); refs and mask are [B_s, ...] or broadcast [1, ...]."""
    out = torch.empty_like(hidden)
    for k, index in plan.token_groups(hidden.device):
        pick = lambda t: t if t is None or t.shape[0] == 1 else t[index]  # noqa: E731
        group_refs = References(pick(refs.selection), pick(refs.value), pick(refs.branch_sum))
        out[index] = selective_rows(anatomy, parts, rows, hidden[index], normed[index], keys[index], pick(mask),
                                    group_refs, k, config, prefix_tokens)
    return out


def _selection_source(keys, normed, config):
    return keys if config.selection_feature == "key" else normed


def _store(pool, index, selection, values, branch_sum, config, prepared: bool = False):
    """Write this layer's references in place into the streams' slots of `pool` [3, slots, T, D]: the
    reference rows at `index.store_pos` (the last one of each stream) -> `index.store_slots`, one copy
    per kind (a slice copy when the slots are consecutive). `selection` is the raw feature of every
    reference row, or already prepared for the metric (`prepared`)."""
    if index.store_pos is not None:
        pick = ((lambda t: t[index.store_pos_slice]) if index.store_pos_slice is not None
                else (lambda t: t.index_select(0, index.store_pos)))
        selection, values, branch_sum = (pick(t) for t in (selection, values, branch_sum))
    if not prepared:
        selection = prepare_reference(selection, config.metric)
    for kind, tensor in enumerate((selection, values, branch_sum)):
        _write_slots(pool[kind], 0, index, tensor)


def slot_references(plan, layer_idx) -> torch.Tensor:
    """[3, S or 1, T, D]: the stored references the selective rows read (a view of the slot pool when
    their slots are one slot or consecutive, else one `index_select`)."""
    return _stored(plan.bank.layer(layer_idx), plan.index)


def _stored(pool, index) -> torch.Tensor:
    """[3, S or 1, T, D] of `pool` [3, slots, T, D] at the selective rows' slots: a slice view when
    `index.stored_slice` exists, else one `index_select` by `index.sel_slots`."""
    if index.stored_slice is not None:
        return pool[:, index.stored_slice]
    return pool.index_select(1, index.sel_slots)


def stored_references(plan, layer_idx) -> References:
    """References of an all-selective call, read from the streams' slots (views when possible)."""
    return References(*slot_references(plan, layer_idx).unbind(0))


SLOT_COPIES = 4  # up to this many scattered slots are written with one plain copy each


def write_references(pool, index, stores) -> None:
    """Write [3, W, T, D] references (selection, value, branch_sum of the stored rows) into their
    slots of `pool` [3, slots, T, D], all kinds at once (`_write_slots`)."""
    _write_slots(pool, 1, index, stores)


def _write_slots(target, dim: int, index, source) -> None:
    """Write `source` into the call's store slots along `dim` of `target`: one copy when the slots are
    consecutive; a few scattered slots (the refreshing streams of a staggered call) one plain copy
    each, since ATen's `index_copy_` moves them element by element (19 µs per layer for 2
    SigLIP-so400m slots on an H200, `docs/stc/layer-kernels.md`); else one `index_copy_`."""
    if index.store_slice is not None:
        target[(slice(None),) * dim + (index.store_slice,)].copy_(source)
    elif len(index.store_slot_list) <= SLOT_COPIES:
        for position, slot in enumerate(index.store_slot_list):
            target.select(dim, slot).copy_(source.select(dim, position))
    else:
        target.index_copy_(dim, index.store_slots, source)


def _mixed_references(pool, index, selection, values, branch_sum) -> References:
    """Per selective row of a mixed call: its in-call reference row (by `call_pos`) or its stream's
    stored reference (read here, before this call's stores overwrite it). One shared reference row is
    a broadcast view; otherwise one gather per kind (+ a select where stored and in-call rows mix)."""
    in_call = (selection, values, branch_sum)
    if index.shared_call_pos is not None:
        p = index.shared_call_pos
        return References(*(t[p : p + 1] for t in in_call))
    stored = None if index.all_from_call else _stored(pool, index).unbind(0)
    from_call = index.from_call if index.any_from_call else None
    return References(*pick_references(in_call, stored, index.call_pos, from_call))


def pick_references(in_call, stored, call_pos, from_call) -> list:
    """Per selective row of a mixed call, its reference (selection, value, branch sum): the in-call
    reference row at `call_pos` or the stream's stored one (`stored`: three [S or 1, T, D]). `stored`
    None: every row reads an in-call row; `from_call` None: every row reads its stored one (no select).
    Shared by the eager layer and the fused mixed function (pure tensor code)."""
    if from_call is None:
        return list(stored)
    picked = [t.index_select(0, call_pos) for t in in_call]
    if stored is None:
        return picked
    chosen = from_call[:, None, None]
    return [torch.where(chosen, mine, old) for mine, old in zip(picked, stored)]
