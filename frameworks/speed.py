"""What a host declares to the speed harness, so that `speed_benchmark` never branches on a host's name.

The harness's end-to-end case times `build_host(name, settings, stc)` hosts. Which settings build the
model a speed preset describes is host knowledge (ReKV runs LLaVA-OneVision and names its sizes "7b",
"0.5b", "tiny"; another host has other models and knobs), so each host factory declares it:

    @declares_speed_config(build_rekv_host)
    def rekv_speed_config(request: SpeedRequest) -> dict:      # settings for build_host("rekv", ...)
        if request.model_config not in SIZES:
            raise ValueError("the ReKV host runs LLaVA-OneVision; ...")   # the harness records the skip
        return {"preset": SIZES[request.model_config], "device": request.device, ...}

A new host (StreamForest, Dispider, LiveCC ...) gets its e2e rows by declaring this hook next to its
factory; nothing in `speed_benchmark` changes. A host without the hook is skipped with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

SpeedConfigHook = Callable[["SpeedRequest"], Mapping[str, Any]]


@dataclass(frozen=True)
class SpeedRequest:
    """The model and placement one speed run times (what the host turns into its own settings).

    Attributes:
        model_config: `frameworks.common.model_sizes` name of the composite model ("llava_ov_7b"), or ""
            when the preset names its vision tower and LLM separately (`vision`, `text`).
        vision: model-size name of the vision tower ("" with `model_config`).
        text: model-size name of the LLM ("" with `model_config`).
        model_path: local checkpoint folder instead of random weights, or None.
        device: "cuda" / "cpu" (already resolved by the harness).
        dtype: "bfloat16" / "float16" / "float32" (already resolved).
        seed: seed of the random weights.
        frames_per_chunk: frames per ingest call (ViT batch and LLM pre-fill call).
    """

    model_config: str
    vision: str
    text: str
    model_path: Optional[str]
    device: str
    dtype: str
    seed: int
    frames_per_chunk: int


def declares_speed_config(factory: Callable) -> Callable[[SpeedConfigHook], SpeedConfigHook]:
    """Attach `hook` to a registered host factory as `factory.speed_config` (returns the hook unchanged)."""

    def attach(hook: SpeedConfigHook) -> SpeedConfigHook:
        factory.speed_config = hook
        return hook

    return attach


def speed_config_hook(factory: Callable) -> Optional[SpeedConfigHook]:
    """The factory's declared hook, or None when the host has not declared one."""
    return getattr(factory, "speed_config", None)


def released_model_settings(request: SpeedRequest, presets: Mapping[Any, str], runs: str) -> dict[str, Any]:
    """The usual hook body: device, dtype and seed of `request`, then its local checkpoint when it names one,
    else random weights at the host preset `presets` maps its model to. `presets` is keyed by `model_config`
    ("qwen2_vl_7b") or by `(vision, text)`; any other model is one ValueError saying what the host `runs`."""
    settings = {"device": request.device, "dtype": request.dtype, "seed": request.seed}
    if request.model_path:
        return dict(settings, model_path=request.model_path)
    model = request.model_config or (request.vision, request.text)
    if model not in presets:
        raise ValueError(f"the {runs}; {model!r} is not it")
    return dict(settings, preset=presets[model], random_weights=True)
