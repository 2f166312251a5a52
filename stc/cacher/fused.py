"""Optional compiled (torch.compile / Triton) selective layer for CUDA: `CacherConfig(fused=True)`.

Why: at one frame per call a SigLIP layer on an H100/H200 is latency-bound. The selective frame's
GEMMs shrink (729 -> 182 rows) but each small kernel still costs several microseconds, and the
selective path adds its own (similarity, top-k, gathers, scatters), so the eager selective layer costs
about as much GPU time as a dense one. Compiling the whole selective layer as ONE pure function lets
Inductor fuse LN1, the similarity, the gathers/scatters, LN2, the activation and the residual adds;
cuBLAS and the attention kernel stay extern.

The function takes every weight as a tensor argument (no modules), so one compiled graph serves all
layers of a tower (same shapes) instead of recompiling per layer. It computes exactly the math of
`layer.selective_rows` (same selection rule, same static/dynamic outputs), with attention through
`scaled_dot_product_attention`. Used for all-selective calls, and for single-frame reference calls
(dense layer + in-place reference writes fused into its epilogues), of layers whose anatomy adapter
exposes LayerNorm + separate q/k/v + fc1-act-fc2 weights (SigLIP, CLIP, DINOv2 with its layer scales)
and whose activation is known; other families (Qwen2-VL) run the eager or graphed path.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from stc.cacher.layer import stored_references
from stc.cacher.selection import expand_index, prepare_reference, select_dynamic_tokens, token_similarity

_ACTIVATIONS = {
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "relu": F.relu,
}


def fusable(anatomy, parts) -> str | None:
    """Activation name when the fused functions can run this layer, else None."""
    name = anatomy.activation(parts)
    return name if name in _ACTIVATIONS and anatomy.fused_weights(parts) is not None else None


def _attention(queries, keys, values, o_w, o_b, heads: int, scale: float):
    """Multi-head attention [B, q, D] x [B, T, D] -> out-proj [B, q, D]."""
    batch, q_len, width = queries.shape
    split = lambda x: x.view(batch, x.shape[1], heads, width // heads).transpose(1, 2)  # noqa: E731
    out = F.scaled_dot_product_attention(split(queries), split(keys), split(values), scale=scale)
    return F.linear(out.transpose(1, 2).reshape(batch, q_len, width), o_w, o_b)


def _mlp(mid, ln2_w, ln2_b, eps2: float, fc1_w, fc1_b, fc2_w, fc2_b, scale2, act: str):
    """MLP branch output (before the residual add) of the post-attention hidden states."""
    normed = F.layer_norm(mid, (mid.shape[-1],), ln2_w, ln2_b, eps2)
    out = F.linear(_ACTIVATIONS[act](F.linear(normed, fc1_w, fc1_b)), fc2_w, fc2_b)
    return out * scale2 if scale2 is not None else out


def _scaled(branch, scale):
    return branch * scale if scale is not None else branch


def _version(tensor: torch.Tensor) -> int:
    """In-place change counter of a weight (inference-mode tensors have none: then storage identity
    alone decides, and weights changed in place under inference mode need a re-attach)."""
    try:
        return tensor._version
    except RuntimeError:
        return 0


def stacked_weights(weights: tuple) -> tuple[tuple, tuple]:
    """The anatomy's fused weights (ln1, q, k, v, out, ln2, fc1, fc2, scale1, scale2) -> the argument
    tuples of `_selective_layer` (k separate, q and v stacked: ONE GEMM for the k recomputed rows) and
    `_reference_layer` (q, k, v stacked: one GEMM for all T rows). Each stacked GEMM computes the same
    output columns as the separate ones, with one launch instead of two or three."""
    ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b, s1, s2 = weights

    def bias(*parts):
        if all(b is None for b in parts):
            return None
        return torch.cat([b if b is not None else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
                          for b, w in zip(parts, (q_w, v_w) if len(parts) == 2 else (q_w, k_w, v_w))])

    tail = (o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b, s1, s2)
    selective = (ln1_w, ln1_b, k_w, k_b, torch.cat([q_w, v_w]), bias(q_b, v_b), *tail)
    reference = (ln1_w, ln1_b, torch.cat([q_w, k_w, v_w]), bias(q_b, k_b, v_b), *tail)
    return selective, reference


def _selective_layer(
    hidden, ref_selection, ref_value, ref_branch_sum,
    ln1_w, ln1_b, k_w, k_b, qv_w, qv_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b, scale1, scale2,
    k: int, heads: int, scale: float, eps1: float, eps2: float, act: str, metric: str, use_keys: bool, prefix: int,
):
    """`layer.selective_rows` as one function of tensors: [B, T, D] -> [B, T, D]."""
    normed = F.layer_norm(hidden, (hidden.shape[-1],), ln1_w, ln1_b, eps1)
    keys = F.linear(normed, k_w, k_b)
    scores = token_similarity(keys if use_keys else normed, ref_selection, metric)
    if prefix:
        scores = torch.cat([torch.full_like(scores[:, :prefix], float("-inf")), scores[:, prefix:]], dim=1)
    indices = select_dynamic_tokens(scores, k)
    index = expand_index(indices, hidden.shape[-1])
    normed_dynamic = torch.gather(normed, 1, index)
    queries, fresh_values = F.linear(normed_dynamic, qv_w, qv_b).chunk(2, dim=-1)
    values = ref_value.expand(hidden.shape[0], -1, -1).scatter(1, index, fresh_values)
    attn = _scaled(_attention(queries, keys, values, o_w, o_b, heads, scale), scale1)
    mid_dynamic = torch.gather(hidden, 1, index) + attn
    mlp = _mlp(mid_dynamic, ln2_w, ln2_b, eps2, fc1_w, fc1_b, fc2_w, fc2_b, scale2, act)
    return (hidden + ref_branch_sum).scatter(1, index, mid_dynamic + mlp)


def _reference_layer(
    hidden, store_selection, store_value, store_branch_sum,
    ln1_w, ln1_b, qkv_w, qkv_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b, scale1, scale2,
    k: int, heads: int, scale: float, eps1: float, eps2: float, act: str, metric: str, use_keys: bool, prefix: int,
):
    """Dense layer for ONE frame [1, T, D] that also writes the stream's references in place."""
    normed = F.layer_norm(hidden, (hidden.shape[-1],), ln1_w, ln1_b, eps1)
    queries, keys, values = F.linear(normed, qkv_w, qkv_b).chunk(3, dim=-1)
    attn = _scaled(_attention(queries, keys, values, o_w, o_b, heads, scale), scale1)
    mid = hidden + attn
    mlp = _mlp(mid, ln2_w, ln2_b, eps2, fc1_w, fc1_b, fc2_w, fc2_b, scale2, act)
    store_selection.copy_(prepare_reference(keys[0] if use_keys else normed[0], metric))
    store_value.copy_(values[0])
    store_branch_sum.copy_(attn[0] + mlp[0])
    return mid + mlp


class FusedSelectiveLayer:
    """Holds the compiled functions of one handle (compiled lazily on first use): the selective layer
    and the single-frame reference layer that writes its references in place.

    Recompilation is bounded: one graph per (frame kind, batch of streams, T, k, dtype). If compiling or running a compiled layer ever fails, the handle warns
    once and falls back to the eager layers for good: a missing Triton never breaks a run."""

    def __init__(self):
        self._compiled = None
        self._compiled_reference = None
        self._stacked: dict = {}  # per layer: stacked q/v and q/k/v weights, rebuilt if a weight changes
        self.failed = False

    def _weights(self, anatomy, parts) -> tuple[tuple, tuple]:
        weights = anatomy.fused_weights(parts)
        version = tuple((w.data_ptr(), _version(w)) for w in weights[2:8] if w is not None)
        cached = self._stacked.get(id(parts))
        if cached is None or cached[0] != version:
            cached = (version, stacked_weights(weights))
            self._stacked[id(parts)] = cached
        return cached[1]

    def run(self, anatomy, parts, hidden, plan, layer_idx: int, config, act: str, prefix: int = 0):
        """Output of `layer` for a planned call, or None when the eager path must run: used for
        all-selective calls (one frame, or one frame of each of several streams) and one-frame
        reference calls; mixed and chained batches stay eager (they are rare and graphable)."""
        if self.failed:
            return None
        try:
            if not plan.reference_rows:
                refs = stored_references(plan, layer_idx)
                return self(anatomy, parts, hidden, refs, plan.tokens_to_update, config, act, prefix)
            if len(plan.states) == 1:
                return self.reference(anatomy, parts, hidden, plan.states[0].layers[layer_idx], config, act)
            return None
        except Exception as error:  # compile/run failure: eager from now on, say so once
            self.failed = True
            warnings.warn(f"STC-Cacher: fused layers disabled ({type(error).__name__}: {error}); using eager layers")
            return None

    def reference(self, anatomy, parts, hidden, ref, config, act: str):
        """Dense layer for one reference frame [1, T, D]; `ref` is the stream's LayerReference."""
        if self._compiled_reference is None:
            self._compiled_reference = torch.compile(_reference_layer, fullgraph=True, dynamic=False)
        return self._compiled_reference(
            hidden, ref.selection, ref.value, ref.branch_sum, *self._weights(anatomy, parts)[1], 0,
            *_constants(parts, act, config, 0),
        )

    def __call__(self, anatomy, parts, hidden, refs, k: int, config, act: str, prefix: int = 0):
        if self._compiled is None:
            self._compiled = torch.compile(_selective_layer, fullgraph=True, dynamic=False)
        return self._compiled(
            hidden, refs.selection, refs.value, refs.branch_sum, *self._weights(anatomy, parts)[0], k,
            *_constants(parts, act, config, prefix),
        )


def _constants(parts, act, config, prefix: int):
    use_prefix = prefix if config.recompute_prefix else 0
    return (parts.heads, parts.scaling, parts.norm1.eps, parts.norm2.eps, act, config.metric,
            config.selection_feature == "key", use_prefix)
