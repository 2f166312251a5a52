"""Load StreamForest from a local checkpoint folder (released LLaVA layout), or build it with random weights.

The released `MCG-NJU/StreamForest-Qwen2-7B` is a LLaVA-NeXT `LlavaQwenForCausalLM` checkpoint: one
config.json with the Qwen2 fields at top level plus `mm_*` fields, safetensors shards (with or without
`model.safetensors.index.json`) and the Qwen2 tokenizer. Its tensor names map onto our modules:

    model.vision_tower.vision_tower.vision_model.*  -> vision_tower.*   (SiglipVisionModel, transformers 5)
    model.mm_projector.mlp.*                        -> projector.mlp.*
    model.*  (embed_tokens, layers, norm)           -> language_model.model.*
    lm_head.*                                       -> language_model.lm_head.*

Tensors the host does not use are skipped by name (the tower's post-layernorm and head, the dropped
27th tower layer, an image-newline parameter). Anything else that does not map, any of our parameters
left without a tensor, and any shape that disagrees with config.json is reported in ONE error naming the
files and keys (`frameworks/common/released_weights.py` reads, checks and copies; this module declares
the names). The vision config is not
in the released config.json (LLaVA reads it from the hub name `mm_vision_tower`): it is SigLIP-so400m
with 26 layers unless the folder's config.json carries a `vision_config` mapping (small test models).
Nothing is ever downloaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import torch
from transformers import AutoTokenizer, Qwen2Config, SiglipVisionConfig

from frameworks.common.llava_loading import resolve_device, resolve_dtype
from frameworks.common.llava_video import PixelSpec
from frameworks.common.model_sizes import siglip_so400m_config
from frameworks.common.released_weights import NameMap, load_released_weights, weight_files
from frameworks.common.text_codec import ByteTextCodec, HFTextCodec, TextCodec
from frameworks.streamforest.memory import MemorySettings
from frameworks.streamforest.model import StreamForestModel, StreamForestSizes

# (released prefix, our prefix), first match wins
NAME_MAP = NameMap((
    ("model.vision_tower.vision_tower.vision_model.", "vision_tower."),
    ("model.mm_projector.", "projector."),
    ("model.", "language_model.model."),
    ("lm_head.", "language_model.lm_head."),
))
LAYOUT = "the StreamForest (LLaVA-Qwen) layout"
_TEXT_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "vocab_size", "max_position_embeddings", "rms_norm_eps", "hidden_act", "tie_word_embeddings",
              "bos_token_id", "eos_token_id")


@dataclass
class LoadedStreamForest:
    """A ready model (eval mode, on device) with its text codec and pixel pre-processing spec."""

    model: StreamForestModel
    codec: TextCodec
    pixels: PixelSpec


def name_map(vision_layers: int) -> NameMap:
    """`NAME_MAP` plus the released tensors the host does not use, skipped by name: the tower's head and
    post-layernorm when ours has none, the dropped last so400m layer (index `vision_layers`), the image
    newline and stored rotary frequencies."""
    return replace(NAME_MAP, ignore=(r"vision_model\.(post_layernorm|head)\.",
                                     rf"vision_model\.encoder\.layers\.{vision_layers}\.",
                                     r"image_newline$", r"rotary_emb\.inv_freq$"))


def read_sizes(path: Path, memory: MemorySettings | None = None) -> StreamForestSizes:
    """Model shapes from a checkpoint's config.json (Qwen2 fields at top level, optional `vision_config`)."""
    data = json.loads((path / "config.json").read_text())
    text = {k: data[k] for k in _TEXT_KEYS if k in data}
    missing = [k for k in _TEXT_KEYS[:6] if k not in text]
    if missing:
        raise ValueError(f"{path / 'config.json'}: no {missing} (not a LLaVA-Qwen config)")
    rope = data.get("rope_parameters") or {"rope_type": "default", "rope_theta": float(data.get("rope_theta", 1e6))}
    vision = SiglipVisionConfig(**data["vision_config"]) if "vision_config" in data else siglip_so400m_config(26)
    if data.get("mm_hidden_size", vision.hidden_size) != vision.hidden_size:
        raise ValueError(f"{path / 'config.json'}: mm_hidden_size={data['mm_hidden_size']} but the tower is "
                         f"{vision.hidden_size}-d")
    sizes = StreamForestSizes(vision, Qwen2Config(**text, rope_parameters=rope))
    return StreamForestSizes(sizes.vision, sizes.text, memory) if memory else sizes


def load_streamforest(model_path: str | Path, dtype="bfloat16", device="auto",
                      memory: MemorySettings | None = None) -> tuple[LoadedStreamForest, StreamForestSizes]:
    """Model + tokenizer from a local folder in the released layout (see the module docstring)."""
    path = Path(model_path).expanduser()
    if not path.is_dir() or not (path / "config.json").is_file():
        raise FileNotFoundError(f"model_path={str(model_path)!r} is not a local StreamForest checkpoint (no config.json "
                                "there). Download MCG-NJU/StreamForest-Qwen2-7B to a folder and pass it; nothing is fetched.")
    files = weight_files(path)
    if not files:
        raise FileNotFoundError(f"model_path={str(path)!r} has no *.safetensors weights")
    sizes = read_sizes(path, memory)
    torch_dtype, torch_device = resolve_dtype(dtype), resolve_device(device)
    with torch.device(torch_device):
        model = StreamForestModel(sizes, torch_dtype)
    tied = model.language_model.config.tie_word_embeddings
    load_released_weights(model, files, name_map(sizes.vision.num_hidden_layers), path, LAYOUT,
                          optional=["language_model.lm_head.weight"] if tied else [], device=torch_device)
    if tied:
        model.language_model.tie_weights()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise FileNotFoundError(f"model_path={str(path)!r} has no loadable tokenizer files: {error}") from error
    eos = sizes.text.eos_token_id
    codec = HFTextCodec(tokenizer, extra_eos=[] if eos is None else ([eos] if isinstance(eos, int) else list(eos)))
    return LoadedStreamForest(model.eval(), codec, PixelSpec.from_checkpoint(path, sizes.vision.image_size)), sizes


def build_random(sizes: StreamForestSizes, dtype="bfloat16", device="auto", seed: int = 0) -> LoadedStreamForest:
    """Random weights with exactly `sizes`' shapes, created on `device` in `dtype` (latency runs, tests).
    Text goes through `ByteTextCodec` (no tokenizer offline)."""
    torch_dtype, torch_device = resolve_dtype(dtype), resolve_device(device)
    with torch.random.fork_rng(devices=[torch_device] if torch_device.type == "cuda" else []):
        torch.manual_seed(seed)
        with torch.device(torch_device):
            model = StreamForestModel(sizes, torch_dtype)
    return LoadedStreamForest(model.eval(), ByteTextCodec(sizes.text.vocab_size), PixelSpec(size=sizes.vision.image_size))


def save_released_layout(model: StreamForestModel, folder: str | Path, extra_config: Mapping | None = None) -> Path:
    """Write `model` as a LLaVA-Qwen checkpoint (config.json + model.safetensors, released tensor names);
    tiny test models also record their `vision_config`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {NAME_MAP.released(k): v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if model.language_model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(folder / "model.safetensors"))
    text = model.sizes.text.to_dict()
    config = {k: text[k] for k in _TEXT_KEYS if k in text}
    config.update(architectures=["LlavaQwenForCausalLM"], model_type="llava_qwen", rope_parameters=text["rope_parameters"],
                  mm_hidden_size=model.sizes.vision.hidden_size, mm_projector_type="tome729_fstw_pemf",
                  mm_vision_tower="google/siglip-so400m-patch14-384", mm_vision_select_layer=-2)
    config.update(extra_config or {})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder
