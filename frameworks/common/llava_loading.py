"""Load a LLaVA-OneVision model from a local checkpoint, or build one with random weights from a config.

No hub access anywhere: `model_path` must be a local directory (the user downloads
`llava-hf/llava-onevision-qwen2-7b-ov-hf` themselves). Random-weight models are created directly on the
target device in the target dtype (a 7B model never materialises in fp32 on the host).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

from frameworks.common.llava_video import PixelSpec
from frameworks.common.text_codec import ByteTextCodec, HFTextCodec, TextCodec

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


@dataclass
class LoadedLlava:
    """A ready model (eval mode, on device) with its text codec and pixel pre-processing spec."""

    model: LlavaOnevisionForConditionalGeneration
    codec: TextCodec
    pixels: PixelSpec


def resolve_dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    if name not in _DTYPES:
        raise ValueError(f"dtype {name!r} is not supported; choose one of {sorted(_DTYPES)}")
    return _DTYPES[name]


def resolve_device(name: str | torch.device) -> torch.device:
    """'auto' -> cuda when available, else cpu. A CUDA device without CUDA is a clear error."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} was requested but CUDA is not available on this machine")
    return device


def _config_eos(config: LlavaOnevisionConfig) -> list[int]:
    eos = config.text_config.eos_token_id
    return [] if eos is None else (list(eos) if isinstance(eos, (list, tuple)) else [eos])


def load_llava_onevision(model_path: str | Path, dtype: str | torch.dtype = "bfloat16", device: str = "auto") -> LoadedLlava:
    """`from_pretrained` of a local LLaVA-OV checkpoint plus its tokenizer; one clear error if missing."""
    path = Path(model_path).expanduser()
    if not path.is_dir() or not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"model_path={str(model_path)!r} is not a local LLaVA-OneVision checkpoint (no config.json there). "
            "Download e.g. llava-hf/llava-onevision-qwen2-7b-ov-hf to a local folder and pass that folder; "
            "nothing is fetched from the hub."
        )
    torch_dtype, torch_device = resolve_dtype(dtype), resolve_device(device)
    # device_map places the shards directly on the target device (no full fp16 copy in host RAM first)
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(
        path, dtype=torch_dtype, local_files_only=True, device_map={"": str(torch_device)}).eval()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise FileNotFoundError(f"model_path={str(path)!r} has no loadable tokenizer files: {error}") from error
    vision = model.config.vision_config
    return LoadedLlava(model, HFTextCodec(tokenizer, extra_eos=_config_eos(model.config)),
                       PixelSpec.from_checkpoint(path, vision.image_size))


def build_random_llava_onevision(config: LlavaOnevisionConfig, dtype: str | torch.dtype = "bfloat16",
                                 device: str = "auto", seed: int = 0) -> LoadedLlava:
    """A randomly initialised model with exactly `config`'s shapes, created on `device` in `dtype`.

    Used for latency runs (work does not depend on weight values) and CPU tests. Text goes through
    `ByteTextCodec` since no tokenizer exists offline."""
    torch_dtype, torch_device = resolve_dtype(dtype), resolve_device(device)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        with torch.device(torch_device):
            model = LlavaOnevisionForConditionalGeneration._from_config(config, dtype=torch_dtype)
    finally:
        torch.random.set_rng_state(generator_state)
    model = model.eval()
    vision = config.vision_config
    return LoadedLlava(model, ByteTextCodec(config.text_config.vocab_size), PixelSpec(size=vision.image_size))
