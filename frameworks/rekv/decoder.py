"""Drive the stock HF decoder layer by layer with a ReKV attention backend (no patching, no globals).

ReKV needs pre-RoPE keys and per-call positions, which the HF attention path (RoPE applied before the
cache, `Cache.update` returning the full K/V) cannot express. Instead of monkey-patching the model or
registering a process-wide attention function, this module runs the decoder stack itself, calling the
stock sub-modules of every layer — `input_layernorm`, `self_attn.{q,k,v,o}_proj`, `post_attention_layernorm`,
`mlp`, the final `norm` and `lm_head` — and hands the un-rotated q/k/v of each layer to a backend object
that owns positions, caches and the SDPA call. The model object is never modified, so the same model
can be used by stock HF code at any time (the equivalence tests do exactly that).

`_layer_forward` mirrors `Qwen2DecoderLayer.forward` + `Qwen2Attention.forward` of transformers 5.17
with two differences: RoPE and the KV cache are the backend's business, and batch size is 1 (a
stream). `run(..., fused=True)` (the static/graphed step) computes the same math with fewer kernels:
RMSNorm through `F.rms_norm` (HF's float32 normalisation, then the weight in the input dtype), and the
two residual adds folded into the o_proj / down_proj GEMMs (`addmm`, only for bias-free projections),
which at one frame per call are each a measurable share of a step's ~1000 small kernels. Layer classes are checked by type: a new architecture (e.g. with q/k norms) must be added
deliberately, never silently run with a wrong forward.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRMSNorm
from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer, Qwen2RMSNorm

_SUPPORTED_LAYERS = (Qwen2DecoderLayer, LlamaDecoderLayer)


class AttentionBackend(Protocol):
    def __call__(self, layer: int, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                 scale: float) -> torch.Tensor:
        """queries [Hq, S, D], keys/values [Hkv, S, D] WITHOUT RoPE -> attention output [S, Hq·D]."""


class DecoderStack:
    """The language model of a LLaVA-style model (`model.model.language_model` + `model.lm_head`)."""

    def __init__(self, language_model: nn.Module, lm_head: nn.Module):
        layers = list(language_model.layers)
        wrong = {type(layer).__name__ for layer in layers if not isinstance(layer, _SUPPORTED_LAYERS)}
        if wrong:
            raise TypeError(f"ReKV decoder supports {[c.__name__ for c in _SUPPORTED_LAYERS]}, got {sorted(wrong)}")
        config = language_model.config
        if any(kind != "full_attention" for kind in getattr(config, "layer_types", None) or []):
            raise ValueError("ReKV needs full-attention decoder layers; the text config enables sliding-window layers")
        self.language_model, self.lm_head = language_model, lm_head
        self.layers = layers
        attn = layers[0].self_attn
        self.head_dim = attn.head_dim
        self.q_heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.num_layers = len(layers)
        self.hidden_size = config.hidden_size
        self._rms, self._swiglu = _rms_math, _swiglu

    def compile_glue(self) -> None:
        """torch.compile the elementwise glue of `run(fused=True)` (RMSNorm, SwiGLU): one fused kernel each
        instead of 4-7 (CUDA; called by hosts that capture steps in CUDA graphs)."""
        self._rms = torch.compile(_rms_math, dynamic=False)
        self._swiglu = torch.compile(_swiglu, dynamic=False)

    def embed(self, ids: list[int] | torch.Tensor, device: torch.device) -> torch.Tensor:
        """Token ids -> input embeddings [S, hidden]."""
        ids = torch.as_tensor(ids, dtype=torch.long, device=device)
        return self.language_model.embed_tokens(ids)

    def run(self, hidden: torch.Tensor, backend: AttentionBackend, fused: bool = False) -> torch.Tensor:
        """inputs_embeds [S, hidden] through every layer and the final norm -> [S, hidden]."""
        forward = self._fused_layer_forward if fused else self._layer_forward
        for index, layer in enumerate(self.layers):
            hidden = forward(layer, index, hidden, backend)
        return self.language_model.norm(hidden)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)

    def _layer_forward(self, layer: nn.Module, index: int, hidden: torch.Tensor, backend: AttentionBackend) -> torch.Tensor:
        attn = layer.self_attn
        residual = hidden
        normed = layer.input_layernorm(hidden)
        length = normed.shape[0]
        queries = attn.q_proj(normed).view(length, -1, self.head_dim).transpose(0, 1)
        keys = attn.k_proj(normed).view(length, -1, self.head_dim).transpose(0, 1)
        values = attn.v_proj(normed).view(length, -1, self.head_dim).transpose(0, 1)
        attended = backend(index, queries, keys, values, attn.scaling)
        hidden = residual + attn.o_proj(attended)
        return hidden + layer.mlp(layer.post_attention_layernorm(hidden))

    def _fused_layer_forward(self, layer: nn.Module, index: int, hidden: torch.Tensor,
                             backend: AttentionBackend) -> torch.Tensor:
        attn, mlp = layer.self_attn, layer.mlp
        normed = self._norm(layer.input_layernorm, hidden)
        length = normed.shape[0]
        queries = attn.q_proj(normed).view(length, -1, self.head_dim).transpose(0, 1)
        keys = attn.k_proj(normed).view(length, -1, self.head_dim).transpose(0, 1)
        values = attn.v_proj(normed).view(length, -1, self.head_dim).transpose(0, 1)
        attended = backend(index, queries, keys, values, attn.scaling)
        hidden = _linear_plus(attn.o_proj, attended, hidden)
        normed = self._norm(layer.post_attention_layernorm, hidden)
        if isinstance(mlp.act_fn, nn.SiLU):
            gated = self._swiglu(mlp.gate_proj(normed), mlp.up_proj(normed))
        else:
            gated = mlp.act_fn(mlp.gate_proj(normed)) * mlp.up_proj(normed)
        return _linear_plus(mlp.down_proj, gated, hidden)

    def _norm(self, norm: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """HF Qwen2/Llama RMSNorm (float32 normalisation, weight applied in the input dtype), fused."""
        if not isinstance(norm, (Qwen2RMSNorm, LlamaRMSNorm)):
            return norm(hidden)
        return self._rms(hidden, norm.weight, norm.variance_epsilon)


def _rms_math(hidden: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * F.rms_norm(hidden.float(), (hidden.shape[-1],), eps=eps).to(hidden.dtype)


def _swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return F.silu(gate) * up


def _linear_plus(linear: nn.Linear, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """residual + linear(x) as one GEMM with the residual as its addend (bias-free layers)."""
    if linear.bias is not None:
        return residual + linear(x)
    return torch.addmm(residual, x, linear.weight.t())
