"""Attach STC-Cacher to a HF vision tower (SigLIP, CLIP, LLaVA-OneVision's tower, same-anatomy ViTs).

    handle = attach_cacher(vision_model, CacherConfig(update_ratio=0.25, cache_interval=2))
    for frame in frames:                      # [1, 3, H, W] each; frames of the default stream
        features = vision_model(pixel_values=frame).last_hidden_state
    handle.detach()                           # original classes back, bit-identical outputs

Like ToMe's `apply_patch`, attaching swaps each encoder layer's `__class__` to a subclass
(`Stc<Upstream>`), so weights, devices, dtypes, hooks and `isinstance`-based output recording all
survive. Unlike ToMe it can be undone, and attaching twice is refused (a second attach would nest).

Layers are found by anatomy, not by attribute path: the one `ModuleList` whose children all have
`layer_norm1`, `self_attn.{q,k,v,out}_proj`, `layer_norm2` and `mlp` (works with and without
`.vision_model`). The tower whose forward the CUDA-graph runner wraps is the module two levels above
that list (`<tower>.encoder.layers`).

State lives in `CacherState` objects (one per stream) owned by the handle, never in globals; the
handle remembers which stream(s) the next call belongs to (`handle.use(...)`). One tower call at a
time per handle: use one handle per thread. The attention backend (`config._attn_implementation`) is
resolved when attaching; re-attach after switching it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence, Union

import torch
from torch import nn

from stc.cacher.graph import CudaGraphRunner
from stc.cacher.fused import FusedSelectiveLayer, layer_activation
from stc.cacher.layer import attention_interface, cached_layer_forward
from stc.cacher.plan import CallPlan, plan_call
from stc.cacher.state import CacherState
from stc.config import CacherConfig

_LAYER_PARTS = ("layer_norm1", "self_attn", "layer_norm2", "mlp")
_ATTENTION_PARTS = ("q_proj", "k_proj", "v_proj", "out_proj")


class StcEncoderLayer:
    """Mixin placed in front of the upstream layer class. Its forward is `cached_layer_forward`; the
    first layer of a call plans the call (reference vs selective rows) for all later layers."""

    def forward(self, hidden_states, attention_mask=None, *args, **kwargs):
        handle = self._stc_handle
        if handle.bypassing:
            return super().forward(hidden_states, attention_mask, *args, **kwargs)
        if self._stc_layer_idx == 0:
            handle._plan = handle._plan_call(hidden_states)
        plan = handle._plan
        if handle.fused is not None and hidden_states.is_cuda and attention_mask is None:
            # compiled layers for one-frame calls and all-selective batches, see stc/cacher/fused.py
            output = handle.fused.run(self, hidden_states, plan, self._stc_layer_idx, handle.config, handle.activation)
            if output is not None:
                return output
        return cached_layer_forward(self, hidden_states, attention_mask, plan, self._stc_layer_idx, handle.config, handle.attention)


def _is_encoder_layer(module: nn.Module) -> bool:
    if not all(hasattr(module, part) for part in _LAYER_PARTS):
        return False
    attn = module.self_attn
    return all(hasattr(attn, p) for p in _ATTENTION_PARTS) and hasattr(attn, "head_dim") and hasattr(attn, "scale")


def find_encoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The single ModuleList of pre-LN ViT encoder layers inside `model`, with its qualified name."""
    candidates = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) > 0 and all(_is_encoder_layer(m) for m in module)
    ]
    if not candidates:
        raise ValueError(
            f"attach_cacher: no pre-LN ViT encoder layers (layer_norm1, self_attn.q/k/v/out_proj, layer_norm2, mlp) "
            f"found in {type(model).__name__}"
        )
    if len(candidates) > 1:
        names = ", ".join(name or "<root>" for name, _ in candidates)
        raise ValueError(f"attach_cacher: several encoder stacks found ({names}); pass the vision tower itself")
    return candidates[0]


class CacherHandle:
    """Owns the patch on one tower and the streams that use it. Create with `attach_cacher`."""

    def __init__(self, model: nn.Module, config: CacherConfig):
        if not isinstance(config, CacherConfig):
            raise TypeError(f"attach_cacher expects a CacherConfig, got {type(config).__name__}")
        layers_name, layers = find_encoder_layers(model)
        if any(isinstance(layer, StcEncoderLayer) for layer in layers):
            raise RuntimeError("attach_cacher: this tower already has STC-Cacher attached; detach the existing handle first")
        self.model = model
        self.config = config
        self.layers = list(layers)
        tower_name = ".".join(layers_name.split(".")[:-2])
        self.tower = model.get_submodule(tower_name) if tower_name else model
        self._original_classes = [type(layer) for layer in self.layers]
        self._plan: CallPlan | None = None
        self._index_cache: dict = {}
        patched: dict[type, type] = {}
        for idx, layer in enumerate(self.layers):
            cls = type(layer)
            if cls not in patched:
                patched[cls] = type(f"Stc{cls.__name__}", (StcEncoderLayer, cls), {"__doc__": StcEncoderLayer.__doc__})
            layer.__class__ = patched[cls]
            layer._stc_handle = self
            layer._stc_layer_idx = idx
        self.stream = self.new_stream()
        self._active: Union[CacherState, list[CacherState]] = self.stream
        # resolved once: every layer of a tower shares its attention backend (config._attn_implementation)
        self.attention = attention_interface(self.layers[0].self_attn)
        self.activation = layer_activation(self.layers[0])
        self.fused = FusedSelectiveLayer() if config.fused and self.activation is not None else None
        self.graph_runner = CudaGraphRunner(self) if config.cuda_graph else None
        self.bypassing = False
        self.attached = True

    # ---- streams -------------------------------------------------------------------------------
    def new_stream(self) -> CacherState:
        """A fresh, independent stream on this tower (its first frame is a reference frame)."""
        return CacherState(num_layers=len(self.layers), owner_id=id(self))

    @contextmanager
    def use(self, streams: Union[CacherState, Sequence[CacherState]]) -> Iterator[None]:
        """Route tower calls inside the block to `streams`: one state (all rows are consecutive frames
        of it) or a sequence with one state per row of the batch."""
        chosen = streams if isinstance(streams, CacherState) else list(streams)
        for state in [chosen] if isinstance(chosen, CacherState) else chosen:
            if not isinstance(state, CacherState) or state.owner_id != id(self):
                raise ValueError("handle.use: every stream must be a CacherState created by this handle (handle.new_stream())")
        previous, self._active = self._active, chosen
        try:
            yield
        finally:
            self._active = previous

    @contextmanager
    def bypass(self) -> Iterator[None]:
        """Run the unpatched tower inside the block: for calls that are not frames of a stream (still
        images, anyres crops), so they never consume the frame schedule or touch any reference."""
        previous, self.bypassing = self.bypassing, True
        try:
            yield
        finally:
            self.bypassing = previous

    def row_states(self, batch: int) -> list[CacherState]:
        """The state of each row for a call with `batch` frames."""
        if isinstance(self._active, CacherState):
            return [self._active] * batch
        if len(self._active) != batch:
            raise ValueError(f"STC-Cacher: call has {batch} frames but handle.use() was given {len(self._active)} streams")
        return list(self._active)

    def _plan_call(self, hidden: torch.Tensor) -> CallPlan:
        k = self.config.tokens_to_update(hidden.shape[1])
        return plan_call(self.row_states(hidden.shape[0]), hidden, self.config.cache_interval, k, self._index_cache)

    # ---- lifetime ------------------------------------------------------------------------------
    def detach(self) -> None:
        """Restore the original layer classes and tower forward. Idempotent."""
        if not self.attached:
            return
        for layer, cls in zip(self.layers, self._original_classes):
            layer.__class__ = cls
            del layer._stc_handle, layer._stc_layer_idx
        if self.graph_runner is not None:
            self.graph_runner.uninstall()
            self.graph_runner = None
        self._plan = None
        self._index_cache.clear()
        self.attached = False

    def __enter__(self) -> CacherState:
        return self.stream

    def __exit__(self, *exc) -> None:
        self.detach()


def attach_cacher(model: nn.Module, config: CacherConfig | None = None) -> CacherHandle:
    """Patch the vision tower inside `model` with STC-Cacher and return the handle (also a context
    manager that yields the default stream and detaches on exit)."""
    return CacherHandle(model, config or CacherConfig())
