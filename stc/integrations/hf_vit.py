"""Attach STC-Cacher to a HF vision tower (SigLIP, CLIP, LLaVA-OneVision's tower, DINOv2, Qwen2-VL's ViT).

    handle = attach_cacher(vision_model, CacherConfig(update_ratio=0.25, cache_interval=2))
    for frame in frames:                      # [1, 3, H, W] each; frames of the default stream
        features = vision_model(pixel_values=frame).last_hidden_state
    with handle.bypass():                     # a still image: not a frame of the stream
        vision_model(pixel_values=image)
    handle.detach()                           # original classes back, bit-identical outputs

Like ToMe's `apply_patch`, attaching swaps each encoder layer's `__class__` to a subclass
(`Stc<Upstream>`), so weights, devices, dtypes, hooks and `isinstance`-based output recording all
survive. Unlike ToMe it can be undone, and attaching twice is refused (a second attach would nest).

Layers are found by anatomy (`stc/integrations/anatomy/`): the one `ModuleList` whose children all
belong to one ViT family (by class, else by SigLIP/CLIP part names). The adapter says where each part
of a layer is, how the block composes them and how a call maps to rows (frames, or Qwen2-VL's
temporal groups); the tower whose forward the CUDA-graph runner wraps is `adapter.tower_levels` above
that list. Pass `anatomy=` to use another adapter.

State lives in `CacherState` objects (one per stream) owned by the handle, never in globals; the
handle remembers which stream(s) the next call belongs to (`handle.use(...)`). One tower call at a
time per handle: use one handle per thread. The attention backend (`config._attn_implementation`) is
resolved when attaching; re-attach after switching it. Attach after moving the model to its device.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence, Union

import torch
from torch import nn

from stc.cacher.fused import FusedSelectiveLayer, fusable
from stc.cacher.graph import CudaGraphRunner
from stc.cacher.layer import cached_layer_forward
from stc.cacher.plan import CallPlan, plan_call
from stc.cacher.refresh import build_policy
from stc.cacher.state import CacherState, ReferencePool
from stc.config import CacherConfig
from stc.integrations.anatomy import LayerAnatomy, anatomy_class_for


class StcEncoderLayer:
    """Mixin placed in front of the upstream layer class. Its forward maps the call to rows through the
    anatomy adapter and runs `cached_layer_forward`; the first layer of a call plans it (reference vs
    selective rows) for all later layers, the last one makes the references it wrote valid."""

    def forward(self, hidden_states, *args, **kwargs):
        handle = self._stc_handle
        if handle.bypassing:
            return super().forward(hidden_states, *args, **kwargs)
        idx = self._stc_layer_idx
        rows = handle.anatomy.to_rows(hidden_states, args, kwargs, None if idx == 0 else handle._rows_context)
        if idx == 0:
            handle._rows_context = rows.context  # rotary tables, size checks: once per call, not per layer
            handle._plan = handle._plan_call(rows.hidden, rows)
        plan, parts = handle._plan, handle.parts[idx]
        output = None
        if handle.fused is not None and handle.fused.applies(rows.hidden) and rows.mask is None and plan.uniform_tokens:
            # compiled layers for every call whose selective rows share one k, see stc/cacher/fused.py
            output = handle.fused.run(handle.anatomy, parts, rows.hidden, plan, idx, handle.config, handle.activation,
                                      handle.prefix_tokens)
        if output is None:
            output = cached_layer_forward(handle.anatomy, parts, rows, plan, idx, handle.config, handle.prefix_tokens)
        if idx == len(handle.layers) - 1:
            plan.commit_references()
        return handle.anatomy.from_rows(output, rows)


def find_encoder_layers(model: nn.Module, anatomy: LayerAnatomy | None = None) -> tuple[str, nn.ModuleList, type]:
    """The single ModuleList of ViT encoder layers of one known family inside `model`, with its
    qualified name and the family's adapter class (or `type(anatomy)` when one is given)."""
    candidates = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if anatomy is not None:
            if all(type(anatomy).matches(m) or type(anatomy).has_parts(m) for m in module):
                candidates.append((name, module, type(anatomy)))
            continue
        families = {anatomy_class_for(m) for m in module}
        if len(families) == 1 and None not in families:
            candidates.append((name, module, families.pop()))
    if not candidates:
        raise ValueError(
            f"attach_cacher: no ViT encoder layers of a known family (SigLIP/CLIP, DINOv2, Qwen2-VL) found in "
            f"{type(model).__name__}; pass anatomy=... for another family"
        )
    if len(candidates) > 1:
        names = ", ".join(name or "<root>" for name, _, _ in candidates)
        raise ValueError(f"attach_cacher: several encoder stacks found ({names}); pass the vision tower itself")
    return candidates[0]


class CacherHandle:
    """Owns the patch on one tower and the streams that use it. Create with `attach_cacher`."""

    def __init__(self, model: nn.Module, config: CacherConfig, anatomy: LayerAnatomy | None = None):
        if not isinstance(config, CacherConfig):
            raise TypeError(f"attach_cacher expects a CacherConfig, got {type(config).__name__}")
        layers_name, layers, family = find_encoder_layers(model, anatomy)
        self.anatomy = anatomy if anatomy is not None else family()
        if any(isinstance(layer, StcEncoderLayer) for layer in layers):
            raise RuntimeError("attach_cacher: this tower already has STC-Cacher attached; detach the existing handle first")
        self.model = model
        self.config = config
        self.layers = list(layers)
        tower_name = ".".join(layers_name.split(".")[:-self.anatomy.tower_levels])
        self.tower = model.get_submodule(tower_name) if tower_name else model
        self._original_classes = [type(layer) for layer in self.layers]
        self._streams_made = 0
        self._plan: CallPlan | None = None
        self._rows_context = None
        self._index_cache: dict = {}
        patched: dict[type, type] = {}
        for idx, layer in enumerate(self.layers):
            cls = type(layer)
            if cls not in patched:
                patched[cls] = type(f"Stc{cls.__name__}", (StcEncoderLayer, cls), {"__doc__": StcEncoderLayer.__doc__})
            layer.__class__ = patched[cls]
            layer._stc_handle = self
            layer._stc_layer_idx = idx
        self.pool = ReferencePool(len(self.layers))  # every stream's references, slot-indexed
        self.stream = self.new_stream()
        self._active: Union[CacherState, list[CacherState]] = self.stream
        # resolved once: parts of every layer, the attention backend (config._attn_implementation)
        self.parts = self.anatomy.bind(self.layers)
        self.prefix_tokens = self.anatomy.num_prefix_tokens(self.tower)
        self.activation = fusable(self.anatomy, self.parts[0])
        self.fused = FusedSelectiveLayer() if config.fused and self.activation is not None and config.reuse == "both" else None
        # None = the released fixed interval (exactly today's plan); else stc/cacher/refresh.py
        self.refresh_policy = build_policy(config, self._layer0_keys)
        self.graph_runner = CudaGraphRunner(self) if config.cuda_graph else None
        self.bypassing = False
        self.attached = True

    # ---- streams -------------------------------------------------------------------------------
    def new_stream(self, phase: int | None = None) -> CacherState:
        """A fresh, independent stream on this tower (its first frame is a reference frame).

        `phase`: refresh at frames ≡ phase (mod N) after the first. Default: 0, or with
        `CacherConfig(stagger_streams=True)` the number of streams made so far, so streams batched in
        lockstep refresh on different calls (flat per-call cost). The stream's references live in a
        slot of `self.pool`; `stream.release()` (or dropping it) gives the slot back."""
        if phase is None:
            phase = self._streams_made if self.config.stagger_streams else 0
        self._streams_made += 1
        return CacherState(num_layers=len(self.layers), owner_id=id(self), phase=phase % self.config.cache_interval,
                           pool=self.pool)

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

    def _plan_call(self, hidden: torch.Tensor, rows=None) -> CallPlan:
        k = self.config.tokens_to_update(hidden.shape[1])
        return plan_call(self.row_states(hidden.shape[0]), hidden, self.config.cache_interval, k, self._index_cache,
                         policy=self.refresh_policy, rows=rows)

    def _layer0_keys(self, hidden: torch.Tensor, rows) -> torch.Tensor:
        """Layer-0 keys of a call's rows: the adaptive refresh policy's change signal."""
        parts = self.parts[0]
        return self.anatomy.keys(parts, self.anatomy.norm1(parts, hidden), rows)

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


def attach_cacher(model: nn.Module, config: CacherConfig | None = None, anatomy: LayerAnatomy | None = None) -> CacherHandle:
    """Patch the vision tower inside `model` with STC-Cacher and return the handle (also a context
    manager that yields the default stream and detaches on exit). `anatomy`: an adapter instance for
    a ViT family that is not registered (default: resolved from the layer class)."""
    return CacherHandle(model, config or CacherConfig(), anatomy)
