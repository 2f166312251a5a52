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
(dense layer + in-place reference writes fused into its epilogues), of layers whose activation is known.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from stc.cacher.layer import References

_ACTIVATIONS = {
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "relu": F.relu,
}


def layer_activation(layer) -> str | None:
    """Name of the MLP activation of a SigLIP/CLIP layer, or None when it is not one we can fuse."""
    config = getattr(layer.mlp, "config", None)
    name = getattr(config, "hidden_act", None)
    return name if name in _ACTIVATIONS else None


def _selective_layer(
    hidden, ref_selection, ref_value, ref_branch_sum,
    ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b,
    k: int, heads: int, scale: float, eps1: float, eps2: float, act: str, metric: str, use_keys: bool,
):
    batch, tokens, width = hidden.shape
    head_dim = width // heads
    normed = F.layer_norm(hidden, (width,), ln1_w, ln1_b, eps1)
    keys = F.linear(normed, k_w, k_b)
    features = keys if use_keys else normed
    if metric == "cosine":
        scores = torch.linalg.vecdot(features, ref_selection) / features.norm(dim=-1).clamp_min(1e-6)
    elif metric == "dot":
        scores = torch.linalg.vecdot(features, ref_selection)
    elif metric == "l1":
        scores = -(features - ref_selection).abs().sum(-1)
    else:
        scores = -torch.linalg.vector_norm(features - ref_selection, dim=-1)
    indices = torch.topk(scores, k, dim=-1, largest=False, sorted=False).indices
    index = indices.unsqueeze(-1).expand(-1, -1, width)
    normed_dynamic = torch.gather(normed, 1, index)
    values = ref_value.expand(batch, -1, -1).scatter(1, index, F.linear(normed_dynamic, v_w, v_b))
    split = lambda x: x.view(batch, x.shape[1], heads, head_dim).transpose(1, 2)  # noqa: E731
    attn = F.scaled_dot_product_attention(split(F.linear(normed_dynamic, q_w, q_b)), split(keys), split(values), scale=scale)
    attn = F.linear(attn.transpose(1, 2).reshape(batch, k, width), o_w, o_b)
    mid_dynamic = torch.gather(hidden, 1, index) + attn
    mlp = F.linear(_ACTIVATIONS[act](F.linear(F.layer_norm(mid_dynamic, (width,), ln2_w, ln2_b, eps2), fc1_w, fc1_b)), fc2_w, fc2_b)
    return (hidden + ref_branch_sum).scatter(1, index, mid_dynamic + mlp)


def _reference_layer(
    hidden, store_selection, store_value, store_branch_sum,
    ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b,
    k: int, heads: int, scale: float, eps1: float, eps2: float, act: str, metric: str, use_keys: bool,
):
    """Dense layer for ONE frame [1, T, D] that also writes the stream's references in place."""
    batch, tokens, width = hidden.shape
    head_dim = width // heads
    normed = F.layer_norm(hidden, (width,), ln1_w, ln1_b, eps1)
    keys = F.linear(normed, k_w, k_b)
    values = F.linear(normed, v_w, v_b)
    split = lambda x: x.view(batch, tokens, heads, head_dim).transpose(1, 2)  # noqa: E731
    attn = F.scaled_dot_product_attention(split(F.linear(normed, q_w, q_b)), split(keys), split(values), scale=scale)
    attn = F.linear(attn.transpose(1, 2).reshape(batch, tokens, width), o_w, o_b)
    mid = hidden + attn
    mlp = F.linear(_ACTIVATIONS[act](F.linear(F.layer_norm(mid, (width,), ln2_w, ln2_b, eps2), fc1_w, fc1_b)), fc2_w, fc2_b)
    features = keys[0] if use_keys else normed[0]
    store_selection.copy_(F.normalize(features, dim=-1) if metric == "cosine" else features)
    store_value.copy_(values[0])
    store_branch_sum.copy_(attn[0] + mlp[0])
    return mid + mlp


class FusedSelectiveLayer:
    """Holds the compiled functions of one handle (compiled lazily on first use): the selective layer
    and the single-frame reference layer that writes its references in place.

    Only one-frame calls use them (the streaming case), which bounds recompilation to one graph per
    (frame kind, T, k, dtype). If compiling or running a compiled layer ever fails, the handle warns
    once and falls back to the eager layers for good: a missing Triton never breaks a run."""

    def __init__(self):
        self._compiled = None
        self._compiled_reference = None
        self.failed = False

    def run(self, layer, hidden, plan, layer_idx: int, config, act: str):
        """Output of `layer` for a planned one-row call, or None when the eager path must run."""
        if self.failed:
            return None
        state = plan.states[0]
        try:
            if plan.reference_rows:
                return self.reference(layer, hidden, state.layers[layer_idx], config, act)
            ref = state.layers[layer_idx]
            refs = References(ref.selection[None], ref.value[None], ref.branch_sum[None])
            return self(layer, hidden, refs, plan.tokens_to_update, config, act)
        except Exception as error:  # compile/run failure: eager from now on, say so once
            self.failed = True
            warnings.warn(f"STC-Cacher: fused layers disabled ({type(error).__name__}: {error}); using eager layers")
            return None

    def reference(self, layer, hidden, ref, config, act: str):
        """Dense layer for one reference frame [1, T, D]; `ref` is the stream's LayerReference."""
        if self._compiled_reference is None:
            self._compiled_reference = torch.compile(_reference_layer, fullgraph=True, dynamic=False)
        return self._compiled_reference(
            hidden, ref.selection, ref.value, ref.branch_sum, *_weights(layer), 0, *_constants(layer, act, config)
        )

    def __call__(self, layer, hidden, refs, k: int, config, act: str):
        if self._compiled is None:
            self._compiled = torch.compile(_selective_layer, fullgraph=True, dynamic=False)
        return self._compiled(
            hidden, refs.selection, refs.value, refs.branch_sum, *_weights(layer), k, *_constants(layer, act, config)
        )


def _weights(layer):
    attn = layer.self_attn
    return (
        layer.layer_norm1.weight, layer.layer_norm1.bias,
        attn.q_proj.weight, attn.q_proj.bias, attn.k_proj.weight, attn.k_proj.bias,
        attn.v_proj.weight, attn.v_proj.bias, attn.out_proj.weight, attn.out_proj.bias,
        layer.layer_norm2.weight, layer.layer_norm2.bias,
        layer.mlp.fc1.weight, layer.mlp.fc1.bias, layer.mlp.fc2.weight, layer.mlp.fc2.bias,
    )


def _constants(layer, act, config):
    attn = layer.self_attn
    return (attn.num_heads, attn.scale, layer.layer_norm1.eps, layer.layer_norm2.eps, act, config.metric, config.selection_feature == "key")
