"""Optional compiled (torch.compile / Triton) selective layer for CUDA: `CacherConfig(fused=True)`.

Why: at one frame per call a SigLIP layer on an H100/H200 is latency-bound. The selective frame's
GEMMs shrink (729 -> 182 rows) but each small kernel still costs several microseconds, and the
selective path adds its own (similarity, top-k, gathers, scatters), so the eager selective layer costs
about as much GPU time as a dense one. Compiling the whole selective layer as ONE pure function lets
Inductor fuse LN1, the similarity, the gathers/scatters, LN2, the activation and the residual adds;
cuBLAS and the attention kernel stay extern.

The functions take every weight as a tensor argument (no modules), so one compiled graph serves all
layers of a tower (same shapes) instead of recompiling per layer. They compute exactly the math of
`layer.cached_layer_forward` (same selection rule, same static/dynamic outputs), with attention
through `scaled_dot_product_attention`, for EVERY call whose selective rows share one k: all-selective
calls (one frame, or one frame of each of several streams), all-reference calls (B rows: the lockstep
multi-stream refresh), and mixed calls (several frames of one stream per call, or streams at different
phases): one batched dense pass over the reference rows and one batched selective pass over the
selective rows, whatever reference each reads (stc/cacher/plan.py: CallIndex). Layers whose anatomy
adapter exposes LayerNorm + separate q/k/v + fc1-act-fc2 weights (SigLIP, CLIP, DINOv2 with its layer
scales) and whose activation is known; other families (Qwen2-VL) run the eager or graphed path.
"""

from __future__ import annotations

import functools
import types
import warnings

import torch
import torch.nn.functional as F

from stc.cacher.layer import pick_references, write_references
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
    return _linear_then_bias(out.transpose(1, 2).reshape(batch, q_len, width), o_w, o_b)


def _mlp(mid, ln2_w, ln2_b, eps2: float, fc1_w, fc1_b, fc2_w, fc2_b, scale2, act: str):
    """MLP branch output (before the residual add) of the post-attention hidden states."""
    normed = F.layer_norm(mid, (mid.shape[-1],), ln2_w, ln2_b, eps2)
    out = _linear_then_bias(_ACTIVATIONS[act](_linear_then_bias(normed, fc1_w, fc1_b)), fc2_w, fc2_b)
    return out * scale2 if scale2 is not None else out


def _linear_then_bias(x, weight, bias):
    """x W^T + b with the bias added by the consumer, for projections whose output feeds only
    pointwise ops (out-projection and fc2 -> residual add, fc1 -> activation). Why (H200 profile,
    docs/stc/layer-kernels.md): with the bias inside `F.linear`, the compiled layer ran fc1 (and fc2 at
    182 rows) as a `badd` GEMM after an ATen copy kernel the size of the output - 6 µs of a 100 µs
    dense layer at B=1, 43 µs of 517 at B=8. Bias-free GEMMs plus an add that Inductor fuses into the
    consumer's kernel have no such pass (dense layer 100.8 -> 83.2 µs at B=1)."""
    out = F.linear(x, weight)
    return out + bias if bias is not None else out


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


def _selective_call(hidden, stored, stored_slots, *weights_and_constants):
    """All-selective call: `_selective_layer` on the stored references `stored` [3, S or 1, T, D], or,
    with `stored_slots` [S], on the slot pool [3, slots, T, D] read at those slots here (see
    `_read_stored`)."""
    return _selective_layer(hidden, *_read_stored(stored, stored_slots), *weights_and_constants)


def _read_stored(stored, stored_slots):
    """(selection, value, branch sum) of the selective rows: `stored` as it is, or the slot pool read at
    `stored_slots` INSIDE the compiled function, so Inductor folds the gather into the kernels that
    consume the references (the slots of streams that joined/left or refresh at different phases are
    not consecutive; ATen's index_select of the three [S, T, D] references outside the compiled function
    took 65 µs per layer at S = 6 on an H200, more than a 6-row selective GEMM)."""
    return (stored if stored_slots is None else stored.index_select(1, stored_slots)).unbind(0)


def _reference_rows(
    hidden, ln1_w, ln1_b, qkv_w, qkv_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b, scale1, scale2,
    heads: int, scale: float, eps1: float, eps2: float, act: str, metric: str, use_keys: bool,
):
    """Dense layer on B rows [B, T, D] -> (output, selection reference (prepared for the metric),
    values, attention + MLP branch sum), each [B, T, D]."""
    normed = F.layer_norm(hidden, (hidden.shape[-1],), ln1_w, ln1_b, eps1)
    queries, keys, values = F.linear(normed, qkv_w, qkv_b).chunk(3, dim=-1)
    attn = _scaled(_attention(queries, keys, values, o_w, o_b, heads, scale), scale1)
    mid = hidden + attn
    mlp = _mlp(mid, ln2_w, ln2_b, eps2, fc1_w, fc1_b, fc2_w, fc2_b, scale2, act)
    return mid + mlp, prepare_reference(keys if use_keys else normed, metric), values, attn + mlp


def _stores(selection, values, branch_sum, store_pos):
    """[3, W, T, D]: the references to write (rows `store_pos`, None = all), one tensor, so the caller
    writes every kind with one copy into the slot pool."""
    stores = torch.stack([selection, values, branch_sum])
    return stores if store_pos is None else stores.index_select(1, store_pos)


def _reference_layer(
    hidden, store_pos,
    ln1_w, ln1_b, qkv_w, qkv_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b, scale1, scale2,
    k: int, heads: int, scale: float, eps1: float, eps2: float, act: str, metric: str, use_keys: bool, prefix: int,
):
    """All-reference call (one frame, or one frame of each of B streams): dense layer on [B, T, D] ->
    (output, references to store [3, W, T, D])."""
    out, selection, values, branch_sum = _reference_rows(
        hidden, ln1_w, ln1_b, qkv_w, qkv_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b, scale1, scale2,
        heads, scale, eps1, eps2, act, metric, use_keys)
    return out, _stores(selection, values, branch_sum, store_pos)


def _mixed_layer(
    hidden, stored, stored_slots,
    ref_rows, sel_rows, from_call, call_pos, store_pos, inverse, selective_weights: tuple, reference_weights: tuple,
    k: int, heads: int, scale: float, eps1: float, eps2: float, act: str, metric: str, use_keys: bool, prefix: int,
):
    """A call with R reference rows and S selective rows (several frames of one stream, or streams at
    different phases): ONE dense pass over the R rows, ONE selective pass over the S rows, each
    selective row reading its in-call reference row (`from_call`, at `call_pos`) or its stored one:
    `stored` [3, S or 1, T, D] (selection, value, branch sum; None when every row reads an in-call one),
    or, with `stored_slots` [S], the whole slot pool [3, slots, T, D] read at those slots (`_read_stored`).
    `from_call` None: no row
    reads an in-call one (streams at different phases, one frame each: the staggered multi-stream call),
    so the stored references are used as they are, without three [S, T, D] selects. -> (output [B, T, D],
    references to store [3, W, T, D])."""
    if stored is not None:
        stored = _read_stored(stored, stored_slots)
    out_r, selection, values, branch_sum = _reference_rows(
        hidden.index_select(0, ref_rows), *reference_weights, heads, scale, eps1, eps2, act, metric, use_keys)
    refs = pick_references((selection, values, branch_sum), stored, call_pos, from_call)
    out_s = _selective_layer(hidden.index_select(0, sel_rows), *refs, *selective_weights,
                             k, heads, scale, eps1, eps2, act, metric, use_keys, prefix)
    return torch.cat([out_r, out_s]).index_select(0, inverse), _stores(selection, values, branch_sum, store_pos)


class FusedSelectiveLayer:
    """Holds the compiled functions of one handle (compiled lazily on first use): the selective layer
    (one stream or a batch of streams), the reference layer (B rows) and the mixed layer (reference
    and selective rows in one call). Each writes nothing itself: the references a call stores come
    back as one [3, W, T, D] tensor and are written into the slot pool with one copy per layer
    (mutating slot views inside a compiled graph would make Inductor copy the whole pool).

    Recompilation is bounded: one graph per (function, row counts, T, k, dtype); three separate
    functions, so each has its own recompile budget. If compiling or running a compiled layer ever
    fails, the handle warns once and falls back to the eager layers for good: a missing Triton never
    breaks a run. `compile=False` runs the same functions uncompiled on any device (tests)."""

    def __init__(self, compile: bool = True):
        self.compile = compile
        self._stacked: dict = {}  # per layer: stacked q/v and q/k/v weights, rebuilt if a weight changes
        self.failed = False
        self.calls = {"selective": 0, "reference": 0, "mixed": 0}  # layer calls per function (tests, reports)

    def applies(self, hidden: torch.Tensor) -> bool:
        return not self.failed and (hidden.is_cuda or not self.compile)

    def compiled(self, name: str, pattern: tuple):
        """The function for "selective", "reference" or "mixed" calls of this shape pattern."""
        self.calls[name] += 1
        return compiled_variant(name, pattern) if self.compile else FUNCTIONS[name]

    def _weights(self, anatomy, parts) -> tuple[tuple, tuple]:
        weights = anatomy.fused_weights(parts)
        version = tuple((w.data_ptr(), _version(w)) for w in weights[2:8] if w is not None)
        cached = self._stacked.get(id(parts))
        if cached is None or cached[0] != version:
            cached = (version, stacked_weights(weights))
            self._stacked[id(parts)] = cached
        return cached[1]

    def run(self, anatomy, parts, hidden, plan, layer_idx: int, config, act: str, prefix: int = 0):
        """Output of `layer` for a planned call (any mix of reference and selective rows with one k),
        or None when the eager path must run (after a failure)."""
        if self.failed:
            return None
        try:
            selective_w, reference_w = self._weights(anatomy, parts)
            constants = (plan.tokens_to_update, *_constants(parts, act, config, prefix))
            index, pool = plan.index, plan.bank.layer(layer_idx)
            stored, slots = _stored_inputs(plan, pool)
            pattern = (tuple(hidden.shape), hidden.dtype, hidden.device, len(plan.reference_rows), len(plan.store_rows),
                       None if stored is None else tuple(stored.shape), slots is None, index.any_from_call,
                       tuple(selective_w[6].shape), constants)
            if not plan.reference_rows:
                return self.compiled("selective", pattern)(hidden, stored, slots, *selective_w, *constants)
            if not plan.selective_rows:
                out, stores = self.compiled("reference", pattern)(hidden, index.store_pos, *reference_w, *constants)
            else:
                from_call = index.from_call if index.any_from_call else None  # None: stored references only
                out, stores = self.compiled("mixed", pattern)(
                    hidden, stored, slots, index.ref_rows, index.sel_rows, from_call, index.call_pos, index.store_pos,
                    index.inverse, selective_w, reference_w, *constants)
            write_references(pool, index, stores)
            return out
        except Exception as error:  # compile/run failure: eager from now on, say so once
            self.failed = True
            warnings.warn(f"STC-Cacher: fused layers disabled ({type(error).__name__}: {error}); using eager layers")
            return None


def _stored_inputs(plan, pool):
    """What a call passes for the stored references its selective rows read: (None, None) when there are
    none (an all-reference call, or every row reads an in-call reference); (a [3, S or 1, T, D] view of
    the pool, None) when their slots are one slot or consecutive; else (the whole pool, slot indices),
    gathered inside the compiled function (`_read_stored`)."""
    index = plan.index
    if not plan.selective_rows or index.all_from_call:
        return None, None
    if index.stored_slice is not None:
        return pool[:, index.stored_slice], None
    return pool, index.sel_slots


FUNCTIONS = {"selective": _selective_call, "reference": _reference_layer, "mixed": _mixed_layer}


@functools.lru_cache(maxsize=64)
def compiled_variant(name: str, pattern: tuple):
    """`torch.compile` of a fresh copy of FUNCTIONS[name] for one call pattern (row counts, shapes,
    dtype, constants). Why copies: dynamo keeps its cache and its recompile budget (8) per code
    object, and with fullgraph=True running past the budget is a hard failure; one process (the speed
    harness: 1, 8, 16 streams, chunked calls, several handles) easily runs more patterns than that
    through one function. Each copy gets its own code object, so each pattern compiles once and never
    counts against another. The functions are pure (weights and buffers are arguments), so sharing the
    compiled copies between handles only shares compile work, like torch's own cache."""
    return compile_fresh(FUNCTIONS[name], f"{abs(hash(pattern)) % 10**8:08d}")


def compile_fresh(function, tag: str, **compile_options):
    """`torch.compile(fullgraph=True, dynamic=False)` of a copy of `function` with its own code object
    (named `<function>__<tag>`): its own dynamo cache and recompile budget (see `compiled_variant`).
    `compile_options` go to torch.compile (the kernel script compares Inductor modes with it)."""
    code = function.__code__.replace(co_name=f"{function.__name__}__{tag}")
    fresh = types.FunctionType(code, function.__globals__, code.co_name, function.__defaults__, function.__closure__)
    return torch.compile(fresh, fullgraph=True, dynamic=False, **compile_options)


def _constants(parts, act, config, prefix: int):
    use_prefix = prefix if config.recompute_prefix else 0
    return (parts.heads, parts.scaling, parts.norm1.eps, parts.norm2.eps, act, config.metric,
            config.selection_feature == "key", use_prefix)
