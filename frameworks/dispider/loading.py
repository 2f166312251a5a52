"""Dispider from local checkpoint folders (released weight names mapped onto ours), or random weights.

Layout read (nothing is fetched from the hub):

    <model_path>/config.json                  Qwen2-7B reaction config (+ Dispider keys, ignored here)
    <model_path>/*.safetensors                reaction LLM, both projectors, and possibly the compressor
    <model_path>/tokenizer files              the reaction tokenizer (<|im_end|> ends an answer)
    <model_path>/stream_compressor/config.json            Qwen2-1.5B compressor config; optional
                                                          `mm_vision_select_layer` (default -2, assumed)
    <model_path>/stream_compressor/*.safetensors          optional: compressor-side weights
    <model_path>/stream_compressor/tokenizer files        compressor tokenizer with <ANS> and <TODO>
    <model_path>/stream_compressor/vision_tower/config.json   optional CLIP config (default: ViT-L/14@224)

Weight names: the released checkpoint is a LLaVA-style `LongQwen2ForCausalLM` whose `model.compressor`
holds the stream compressor (its own `model.vision_tower.vision_tower`, `model.mm_projector`,
`silent_head`). `RELEASED_TO_OURS` rewrites those prefixes onto `DispiderModel`; keys of files in
`stream_compressor/` are read as if prefixed `model.compressor.`; the portable re-export's extra
`model.compressor.compressor.` level is folded. These names are inferred from the released code (the
weights were not inspected here): a checkpoint that does not fit fails with ONE error listing the
missing, unmapped and mis-shaped keys, never a silently random layer (reading, checking and copying:
`frameworks/common/released_weights.py`; this module declares the names and the folders).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from frameworks.common.llava_loading import resolve_device, resolve_dtype
from frameworks.common.llava_video import PixelSpec
from frameworks.common.released_weights import Mismatch, NameMap, load_released_weights, weight_files
from frameworks.common.text_codec import ByteTextCodec, HFTextCodec, TextCodec
from frameworks.dispider.model import DispiderArchitecture, DispiderModel, build_random_model

COMPRESSOR_DIR = "stream_compressor"
ANS_TOKEN, TODO_TOKEN = "<ANS>", "<TODO>"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# released prefix -> our prefix (None: a released weight Dispider inference never reads); first match wins
RELEASED_TO_OURS: tuple[tuple[str, str | None], ...] = (
    # transformers 4.x CLIPVisionModel nests `vision_model.`; 5.x's flat module has no such level
    ("model.compressor.model.vision_tower.vision_tower.vision_model.", "vision_tower."),
    ("model.compressor.model.vision_tower.vision_tower.", "vision_tower."),
    ("model.compressor.model.mm_projector.mlp.", "pool_projector.mlp."),
    ("model.compressor.model.mm_projector.", "pool_projector.mlp."),
    ("model.compressor.model.", "compressor."),
    ("model.compressor.silent_head.", "silent_head."),
    ("model.compressor.lm_head.", None),
    ("model.compress_projector.", "compress_projector."),
    ("model.clip_projector.", "clip_projector."),
    ("model.", "reaction.model."),
    ("lm_head.", "reaction.lm_head."),
)
# the portable re-export nests the compressor one level deeper; folded before the rules
NAMES = NameMap(RELEASED_TO_OURS, folds=(("model.compressor.compressor.", "model.compressor."),))


@dataclass
class LoadedDispider:
    """A ready model (eval mode, on device) with both text codecs and the special token ids."""

    model: DispiderModel
    codec: TextCodec             # reaction LLM text
    compressor_codec: TextCodec  # compressor text
    ans_id: int
    todo_id: int
    pixels: PixelSpec


# ------------------------------------------------------------------------------------------- random
def build_random_dispider(arch: DispiderArchitecture, dtype="bfloat16", device="auto", seed: int = 0) -> LoadedDispider:
    """Random weights at `arch`'s sizes; byte-level text codecs (no tokenizer offline), <ANS>/<TODO>
    are the compressor vocabulary's last two ids."""
    model = build_random_model(arch, resolve_dtype(dtype), resolve_device(device), seed)
    vocab = arch.compressor.vocab_size
    return LoadedDispider(model, ByteTextCodec(arch.reaction.vocab_size), ByteTextCodec(vocab - 2), vocab - 2, vocab - 1,
                          PixelSpec(size=arch.vision.image_size, mean=CLIP_MEAN, std=CLIP_STD))


# ------------------------------------------------------------------------------------------- local folders
def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"model_path: {what} not found at {str(path)!r} (expected a local Dispider "
                                f"checkpoint: config.json + weights, and {COMPRESSOR_DIR}/; nothing is fetched from the hub)")
    return path


def read_architecture(root: Path) -> DispiderArchitecture:
    """The three configs from the folders (CLIP: `stream_compressor/vision_tower/config.json` when present,
    else the released CLIP-L/14@224 values)."""
    from transformers import CLIPVisionConfig, Qwen2Config

    from frameworks.common.model_sizes import clip_vit_l14_config

    reaction = Qwen2Config.from_pretrained(_require(root / "config.json", "config.json").parent)
    compressor_dir = _require(root / COMPRESSOR_DIR, f"the {COMPRESSOR_DIR}/ folder")
    compressor = Qwen2Config.from_pretrained(_require(compressor_dir / "config.json", f"{COMPRESSOR_DIR}/config.json").parent)
    vision_dir = compressor_dir / "vision_tower"
    vision = CLIPVisionConfig.from_pretrained(vision_dir) if (vision_dir / "config.json").is_file() else clip_vit_l14_config(224)
    extra = json.loads((compressor_dir / "config.json").read_text())
    return DispiderArchitecture(vision, compressor, reaction, select_layer=int(extra.get("mm_vision_select_layer", -2)),
                                pool_num=int(extra.get("pool_num", 4)))


def load_weights(model: DispiderModel, root: Path) -> None:
    """Copy every released weight into `model`; one ValueError naming missing/unmapped/mis-shaped keys.
    Keys of `stream_compressor/` files are read as if prefixed `model.compressor.`; every shard of each
    folder is read (no index file is consulted)."""
    files = weight_files(root, index=False) + weight_files(root / COMPRESSOR_DIR, "model.compressor.", index=False)
    if not files:
        raise FileNotFoundError(f"model_path={str(root)!r}: no *.safetensors weights in it or in {COMPRESSOR_DIR}/")
    load_released_weights(model, files, NAMES, root, message=lambda mismatch: _unfit(mismatch, root))


def _unfit(mismatch: Mismatch, root: Path) -> str:
    """The error line (its wording is what docs/dispider/REPRODUCE.md tells users to look for)."""
    parts = []
    for label, items in (("missing", mismatch.missing),
                         ("unmapped", [f"{Path(file).name}:{key}" for file, key in mismatch.unexpected]),
                         ("wrong shape", [f"{key} {theirs} != {ours}"
                                          for _, key, theirs, ours in mismatch.wrong_shape])):
        if items:
            parts.append(f"{len(items)} {label} (e.g. {', '.join(items[:4])})")
    return f"model_path={str(root)!r} is not a Dispider checkpoint this loader can map: {'; '.join(parts)}"


def _tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as error:
        raise FileNotFoundError(f"model_path: {str(folder)!r} has no loadable tokenizer files: {error}") from error


def load_dispider(model_path: str | Path, dtype="bfloat16", device="auto") -> LoadedDispider:
    """The model from local folders (see module docstring), created on `device` in `dtype`, then filled."""
    root = _require(Path(model_path).expanduser(), "the checkpoint folder")
    arch = read_architecture(root)
    tokenizer = _tokenizer(root)
    compressor_tokenizer = _tokenizer(root / COMPRESSOR_DIR)
    vocab = compressor_tokenizer.get_vocab()
    for token in (ANS_TOKEN, TODO_TOKEN):
        if token not in vocab:
            raise ValueError(f"model_path: the {COMPRESSOR_DIR}/ tokenizer has no {token} token")
    model = build_random_model(arch, resolve_dtype(dtype), resolve_device(device), seed=0)
    load_weights(model, root)
    vision_dir = root / COMPRESSOR_DIR / "vision_tower"
    pixels = PixelSpec(size=arch.vision.image_size, mean=CLIP_MEAN, std=CLIP_STD)
    if (vision_dir / "preprocessor_config.json").is_file():
        pixels = PixelSpec.from_checkpoint(vision_dir, arch.vision.image_size)
    eos = reaction_eos(arch)
    return LoadedDispider(model, HFTextCodec(tokenizer, extra_eos=eos), HFTextCodec(compressor_tokenizer),
                          vocab[ANS_TOKEN], vocab[TODO_TOKEN], pixels)


def reaction_eos(arch: DispiderArchitecture) -> list[int]:
    eos = arch.reaction.eos_token_id
    return [] if eos is None else (list(eos) if isinstance(eos, (list, tuple)) else [eos])


def save_dispider(model: DispiderModel, folder: str | Path, tokenizer=None, compressor_tokenizer=None) -> Path:
    """Write `model` in the released layout: reaction + projectors in `<folder>/model.safetensors`,
    compressor-side weights (CLIP, PoolProjector, compressor, silent head) in
    `<folder>/stream_compressor/model.safetensors`, configs, and the tokenizers when given."""
    from safetensors.torch import save_file

    root = Path(folder)
    compressor_dir = root / COMPRESSOR_DIR
    compressor_dir.mkdir(parents=True, exist_ok=True)
    arch = model.arch
    arch.reaction.save_pretrained(root)
    arch.compressor.save_pretrained(compressor_dir)
    extra = json.loads((compressor_dir / "config.json").read_text())
    extra.update(mm_vision_select_layer=arch.select_layer, pool_num=arch.pool_num)
    (compressor_dir / "config.json").write_text(json.dumps(extra, indent=2))
    arch.vision.save_pretrained(compressor_dir / "vision_tower")
    main, side = {}, {}
    for name, tensor in model.named_parameters():
        released = NAMES.released(name)
        if released.startswith("model.compressor."):
            side[released[len("model.compressor."):]] = tensor.detach().contiguous().cpu()
        else:
            main[released] = tensor.detach().contiguous().cpu()
    save_file(main, str(root / "model.safetensors"))
    save_file(side, str(compressor_dir / "model.safetensors"))
    if tokenizer is not None:
        tokenizer.save_pretrained(root)
    if compressor_tokenizer is not None:
        compressor_tokenizer.save_pretrained(compressor_dir)
    return root
