"""Load LiveCC (stock `Qwen2VLForConditionalGeneration`) from a local folder, or build it with random weights.

No hub access: `model_path` must be a local copy of `chenjoya/LiveCC-7B-Instruct` (or -Base) with its
tokenizer files; pixel mean/std come from its `preprocessor_config.json` when present. Random-weight
models (latency runs, tests) are created on the target device in the target dtype from an explicit
config (`frameworks/common/model_sizes.qwen2_vl_config`) and use `ByteTextCodec` (no tokenizer offline).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer, Qwen2VLConfig, Qwen2VLForConditionalGeneration

from frameworks.common.llava_loading import resolve_device, resolve_dtype
from frameworks.common.text_codec import ByteTextCodec, HFTextCodec, TextCodec
from frameworks.livecc.video import CLIP_MEAN, CLIP_STD, PatchSpec


@dataclass
class LoadedLiveCC:
    """A ready model (eval mode, on device), its text codec and its patch/normalisation spec."""

    model: Qwen2VLForConditionalGeneration
    codec: TextCodec
    patches: PatchSpec


def _config_eos(config: Qwen2VLConfig) -> list[int]:
    eos = getattr(config.text_config, "eos_token_id", None)
    return [] if eos is None else (list(eos) if isinstance(eos, (list, tuple)) else [eos])


def _pixel_stats(path: Path) -> tuple[tuple, tuple]:
    for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
        file = path / name
        if file.is_file():
            data = json.loads(file.read_text())
            return tuple(data.get("image_mean", CLIP_MEAN)), tuple(data.get("image_std", CLIP_STD))
    return CLIP_MEAN, CLIP_STD


def load_livecc(model_path: str | Path, dtype: str | torch.dtype = "bfloat16", device: str = "auto") -> LoadedLiveCC:
    """`from_pretrained` of a local LiveCC / Qwen2-VL folder plus its tokenizer; one clear error if missing."""
    path = Path(model_path).expanduser()
    if not path.is_dir() or not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"model_path={str(model_path)!r} is not a local LiveCC checkpoint (no config.json there). Download "
            "chenjoya/LiveCC-7B-Instruct to a local folder and pass that folder; nothing is fetched from the hub.")
    torch_dtype, torch_device = resolve_dtype(dtype), resolve_device(device)
    model = Qwen2VLForConditionalGeneration.from_pretrained(
        path, dtype=torch_dtype, local_files_only=True, device_map={"": str(torch_device)}).eval()
    if not any((path / name).is_file() for name in ("tokenizer.json", "vocab.json")):
        # transformers 5 would build an EMPTY Qwen2 tokenizer from config.json alone; refuse instead
        raise FileNotFoundError(f"model_path={str(path)!r} has no tokenizer files (tokenizer.json or vocab.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise FileNotFoundError(f"model_path={str(path)!r} has no loadable tokenizer files: {error}") from error
    mean, std = _pixel_stats(path)
    return LoadedLiveCC(model, HFTextCodec(tokenizer, extra_eos=_config_eos(model.config)),
                        PatchSpec.from_vision_config(model.config.vision_config, mean, std))


def build_random_livecc(config: Qwen2VLConfig, dtype: str | torch.dtype = "bfloat16", device: str = "auto",
                        seed: int = 0) -> LoadedLiveCC:
    """A randomly initialised LiveCC with exactly `config`'s shapes, created on `device` in `dtype`."""
    torch_dtype, torch_device = resolve_dtype(dtype), resolve_device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.device(torch_device):
            model = Qwen2VLForConditionalGeneration._from_config(config, dtype=torch_dtype)
    return LoadedLiveCC(model.eval(), ByteTextCodec(config.text_config.vocab_size),
                        PatchSpec.from_vision_config(config.vision_config))
