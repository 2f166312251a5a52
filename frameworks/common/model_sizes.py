"""Explicit HF configs at the released model sizes, built offline (never the library defaults).

Why this file exists: transformers' default configs are NOT the released sizes (`CLIPVisionConfig()` is
ViT-B/32, the default LLaVA-OV text config is a 4096-d Qwen2, the Qwen2-VL text default is the 72B). A
latency number taken on a default config measures the wrong model. Every size below is passed
explicitly, from the released checkpoints' configs (see ../shared/spec/frameworks-benchmarks.md §C).

Random-weight models built from these configs have exactly the released shapes, which is all latency
depends on. The "tiny" variants keep the same structure (odd patch grid pooled 2x with ceil, GQA, untied
embeddings) at toy sizes so CPU tests run in seconds.

    cfg = llava_onevision_config("7b")            # LlavaOnevisionConfig, SigLIP-26L@384 + Qwen2-7B
    cfg = build_config("siglip_so400m")           # any named preset from PRESETS
    tokens_per_frame(cfg)                         # 729 vision tokens (27x27)
    pooled_tokens_per_frame(cfg)                  # 196 tokens after the 2x bilinear pooling (14x14)
"""

from __future__ import annotations

import math
from typing import Any, Callable

from transformers import (
    CLIPVisionConfig,
    LlavaOnevisionConfig,
    PretrainedConfig,
    Qwen2Config,
    Qwen2VLConfig,
    SiglipVisionConfig,
)

_ROPE_1M = {"rope_type": "default", "rope_theta": 1000000.0}


def _merge(base: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(base)
    out.update(overrides or {})
    return out


# ----------------------------------------------------------------------------------------- vision towers
def siglip_so400m_config(num_layers: int = 26, image_size: int = 384, **overrides) -> SiglipVisionConfig:
    """SigLIP-so400m/14: d=1152, m=4304, 16 heads; 26 layers as used by LLaVA-OV/StreamForest (27 upstream)."""
    base = dict(
        hidden_size=1152, intermediate_size=4304, num_hidden_layers=num_layers, num_attention_heads=16,
        image_size=image_size, patch_size=14, num_channels=3, hidden_act="gelu_pytorch_tanh",
        layer_norm_eps=1e-6, vision_use_head=False,
    )
    return SiglipVisionConfig(**_merge(base, overrides))


def siglip_tiny_config(**overrides) -> SiglipVisionConfig:
    """Toy SigLIP: 63 px / patch 7 = 9x9 = 81 tokens (odd grid like 27x27), pooled to 5x5 = 25."""
    base = dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4, image_size=63,
        patch_size=7, num_channels=3, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6,
        vision_use_head=False,
    )
    return SiglipVisionConfig(**_merge(base, overrides))


def clip_vit_l14_config(image_size: int = 224, **overrides) -> CLIPVisionConfig:
    """CLIP ViT-L/14 (Dispider): d=1024, m=4096, 24 layers; 224 px -> 16x16 patches + CLS = 257 tokens."""
    base = dict(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
        image_size=image_size, patch_size=14, num_channels=3, hidden_act="quick_gelu", layer_norm_eps=1e-5,
        projection_dim=768,
    )
    return CLIPVisionConfig(**_merge(base, overrides))


def clip_tiny_config(**overrides) -> CLIPVisionConfig:
    """Toy CLIP: 56 px / patch 14 = 4x4 patches + CLS = 17 tokens."""
    base = dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4, image_size=56,
        patch_size=14, num_channels=3, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=32,
    )
    return CLIPVisionConfig(**_merge(base, overrides))


# ----------------------------------------------------------------------------------------- text models
def qwen2_text_config(size: str = "7b", **overrides) -> Qwen2Config:
    """Qwen2 decoder at a released size: "7b", "1.5b", "0.5b", or "tiny" (2 layers, 64-d, GQA 4/2)."""
    sizes: dict[str, dict[str, Any]] = {
        "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                   num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
        "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                     num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
        "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                     num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
        "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, vocab_size=1024, tie_word_embeddings=False),
    }
    if size not in sizes:
        raise ValueError(f"unknown Qwen2 size {size!r}; choose one of {sorted(sizes)}")
    base = dict(
        sizes[size], max_position_embeddings=32768, rms_norm_eps=1e-6, hidden_act="silu",
        rope_parameters=dict(_ROPE_1M), bos_token_id=151643, eos_token_id=151645,
    )
    if size == "tiny":
        base.update(bos_token_id=1, eos_token_id=2, max_position_embeddings=4096)
    return Qwen2Config(**_merge(base, overrides))


# ----------------------------------------------------------------------------------------- LLaVA-OV
def llava_onevision_config(name: str = "7b", **overrides) -> LlavaOnevisionConfig:
    """LLaVA-OneVision as released (`llava-hf/llava-onevision-qwen2-{7b,0.5b}-ov-hf`), or "tiny".

    7b: SigLIP-so400m 26L@384 (729 tokens, pooled 27x27 -> 14x14 = 196) + Qwen2-7B with vocab 152128
    (152064 + 2 added tokens, padded to a multiple of 64). 0.5b: same tower + Qwen2-0.5B, vocab 152000.
    tiny: toy SigLIP (81 tokens, pooled to 25) + a 2-layer Qwen2 with vocab 1024 whose image/video token
    ids (1000/1001) fit inside the vocabulary.
    """
    if name == "7b":
        vision, text = siglip_so400m_config(26), qwen2_text_config("7b", vocab_size=152128)
        ids = dict(image_token_index=151646, video_token_index=151647)
    elif name == "0.5b":
        vision, text = siglip_so400m_config(26), qwen2_text_config("0.5b", vocab_size=152000,
                                                                   tie_word_embeddings=False)
        ids = dict(image_token_index=151646, video_token_index=151647)
    elif name == "tiny":
        vision, text = siglip_tiny_config(), qwen2_text_config("tiny")
        ids = dict(image_token_index=1000, video_token_index=1001)
    else:
        raise ValueError(f"unknown LLaVA-OneVision size {name!r}; choose one of ['0.5b', '7b', 'tiny']")
    base = dict(
        vision_config=vision, text_config=text, projector_hidden_act="gelu", multimodal_projector_bias=True,
        vision_feature_select_strategy="full", vision_feature_layer=-1, vision_aspect_ratio="anyres_max_9",
        tie_word_embeddings=False, **ids,
    )
    return LlavaOnevisionConfig(**_merge(base, overrides))


# ----------------------------------------------------------------------------------------- Qwen2-VL / LiveCC
def qwen2_vl_config(name: str = "7b", **overrides) -> Qwen2VLConfig:
    """Qwen2-VL-7B (LiveCC-7B architecture): 32-layer 1280-d ViT with 2x2 merger + Qwen2-7B, M-RoPE."""
    if name == "7b":
        vision = dict(depth=32, embed_dim=1280, num_heads=16, mlp_ratio=4, hidden_size=3584, patch_size=14,
                      temporal_patch_size=2, spatial_merge_size=2, in_channels=3, hidden_act="quick_gelu")
        text = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                    num_key_value_heads=4, vocab_size=152064, max_position_embeddings=32768,
                    rms_norm_eps=1e-6, hidden_act="silu", bos_token_id=151643, eos_token_id=151645)
        ids = dict(image_token_id=151655, video_token_id=151656, vision_start_token_id=151652,
                   vision_end_token_id=151653)
    elif name == "tiny":
        vision = dict(depth=2, embed_dim=64, num_heads=4, mlp_ratio=2, hidden_size=64, patch_size=14,
                      temporal_patch_size=2, spatial_merge_size=2, in_channels=3, hidden_act="quick_gelu")
        text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, vocab_size=1024, max_position_embeddings=4096, rms_norm_eps=1e-6,
                    hidden_act="silu", bos_token_id=1, eos_token_id=2)
        ids = dict(image_token_id=1000, video_token_id=1001, vision_start_token_id=1002,
                   vision_end_token_id=1003)
    else:
        raise ValueError(f"unknown Qwen2-VL size {name!r}; choose one of ['7b', 'tiny']")
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    section = [16, 24, 24] if head_dim == 128 else [head_dim // 8, head_dim // 8 * 1.5, head_dim // 8 * 1.5]
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1000000.0,
                               "mrope_section": [int(s) for s in section]}
    base = dict(vision_config=vision, text_config=text, tie_word_embeddings=False, **ids)
    return Qwen2VLConfig(**_merge(base, overrides))


# ----------------------------------------------------------------------------------------- Dispider
def dispider_configs(name: str = "released") -> tuple[CLIPVisionConfig, Qwen2Config, Qwen2Config]:
    """Dispider's three networks: (CLIP tower, Qwen2 compressor, Qwen2 reaction LLM).

    released: CLIP ViT-L/14@224 + Qwen2-1.5B (vocab 151936 incl. room for <ANS>/<TODO>) + Qwen2-7B
    (vocab 152064), spec §C3. tiny: CLIP 112 px / patch 14 (8x8 patches -> 16 concatenated tokens per
    frame, like 16x16 -> 64) + a 64-d 2-layer compressor + a 48-d 2-layer reaction LLM (different
    widths so a projector wired to the wrong side fails).
    """
    if name == "released":
        return clip_vit_l14_config(224), qwen2_text_config("1.5b"), qwen2_text_config("7b")
    if name == "tiny":
        vision = clip_tiny_config(image_size=112, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=2)
        return vision, qwen2_text_config("tiny"), qwen2_text_config("tiny", hidden_size=48, intermediate_size=96)
    raise ValueError(f"unknown Dispider size {name!r}; choose one of ['released', 'tiny']")


# ----------------------------------------------------------------------------------------- token arithmetic
def tokens_per_frame(vision_config: PretrainedConfig) -> int:
    """Tokens a ViT layer sees per frame: (image/patch)^2, plus one CLS token for CLIP."""
    cfg = getattr(vision_config, "vision_config", vision_config)
    grid = cfg.image_size // cfg.patch_size
    return grid * grid + (1 if cfg.model_type == "clip_vision_model" else 0)


def pooled_tokens_per_frame(config: LlavaOnevisionConfig) -> int:
    """LLaVA-OV video tokens per frame after `apply_pooling` (bilinear to ceil(grid/2)^2): 196 for 27x27."""
    v = config.vision_config
    side = math.ceil((v.image_size // v.patch_size) / 2)
    return side * side


# ----------------------------------------------------------------------------------------- registry
PRESETS: dict[str, Callable[[], PretrainedConfig]] = {
    "llava_ov_7b": lambda: llava_onevision_config("7b"),
    "llava_ov_0_5b": lambda: llava_onevision_config("0.5b"),
    "llava_ov_tiny": lambda: llava_onevision_config("tiny"),
    "siglip_so400m": lambda: siglip_so400m_config(26),
    "siglip_so400m_27l": lambda: siglip_so400m_config(27),
    "siglip_tiny": siglip_tiny_config,
    "clip_vit_l14_224": lambda: clip_vit_l14_config(224),
    "clip_vit_l14_336": lambda: clip_vit_l14_config(336),
    "clip_tiny": clip_tiny_config,
    "qwen2_7b": lambda: qwen2_text_config("7b"),
    "qwen2_1_5b": lambda: qwen2_text_config("1.5b"),
    "qwen2_0_5b": lambda: qwen2_text_config("0.5b"),
    "qwen2_tiny": lambda: qwen2_text_config("tiny"),
    "qwen2_vl_7b": lambda: qwen2_vl_config("7b"),
    "livecc_7b": lambda: qwen2_vl_config("7b"),
    "qwen2_vl_tiny": lambda: qwen2_vl_config("tiny"),
}


def build_config(name: str) -> PretrainedConfig:
    """A fresh config for preset `name` (see PRESETS); one clear error for an unknown name."""
    if name not in PRESETS:
        raise KeyError(f"unknown model-size preset {name!r}; available: {sorted(PRESETS)}")
    return PRESETS[name]()
