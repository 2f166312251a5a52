"""StreamForest's modules on stock transformers classes: SigLIP-26 tower, 2-layer MLP, Qwen2 decoder.

    model = StreamForestModel(streamforest_sizes("7b"))    # random init at the released shapes
    model.vision_tower        # SiglipVisionModel, 26 layers, no head (the 27th layer is dropped)
    model.projector.mlp       # Linear(1152 -> 3584), GELU, Linear(3584 -> 3584)
    model.language_model      # Qwen2ForCausalLM, driven with inputs_embeds

The position embeddings and the memory forest between tower and MLP have no weights
(`positions.py`, `memory.py`). Parameter names are ours; `loading.py` maps the released LLaVA layout
(`model.vision_tower.vision_tower.vision_model.*`, `model.mm_projector.mlp.*`, `model.*`, `lm_head.*`)
onto them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import Qwen2Config, Qwen2ForCausalLM, SiglipVisionConfig, SiglipVisionModel

from frameworks.common.model_sizes import qwen2_text_config, siglip_so400m_config, siglip_tiny_config
from frameworks.streamforest.memory import MemorySettings

# tiny preset: 9x9 = 81 tokens per frame; tiers scaled so that a 20-frame CPU stream fills the short
# window, splits events and consolidates (window 4 + split 3, 8 tokens per event frame, quota 48)
TINY_MEMORY = MemorySettings(now_tokens=81, short_window=4, short_tokens=16, split_window=3, long_tokens=8, quota=48)


@dataclass
class StreamForestSizes:
    """The shapes of one StreamForest model and its memory constants."""

    vision: SiglipVisionConfig
    text: Qwen2Config
    memory: MemorySettings = field(default_factory=MemorySettings)

    @property
    def grid(self) -> int:
        return self.vision.image_size // self.vision.patch_size


def streamforest_sizes(preset: str = "7b") -> StreamForestSizes:
    """"7b" = MCG-NJU/StreamForest-Qwen2-7B (SigLIP-so400m 26 layers @384 + Qwen2-7B, §C2); "tiny" for tests."""
    if preset == "7b":
        return StreamForestSizes(siglip_so400m_config(26), qwen2_text_config("7b"))
    if preset == "tiny":
        return StreamForestSizes(siglip_tiny_config(), qwen2_text_config("tiny"), TINY_MEMORY)
    raise ValueError(f"unknown StreamForest preset {preset!r}; choose one of ['7b', 'tiny']")


class Projector(nn.Module):
    """The weighted part of StreamForest's projector: `mlp` = Linear, GELU, Linear (released names)."""

    def __init__(self, vision_hidden: int, text_hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(vision_hidden, text_hidden), nn.GELU(), nn.Linear(text_hidden, text_hidden))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.mlp(tokens)


class StreamForestModel(nn.Module):
    """Create inside `with torch.device(...)` to allocate directly on a device; `dtype` is the parameter
    dtype from the start (a 7B model never materialises in fp32)."""

    def __init__(self, sizes: StreamForestSizes, dtype: torch.dtype = torch.float32):
        super().__init__()
        if sizes.vision.vision_use_head:
            raise ValueError("StreamForest's tower has no attention-pool head: vision_use_head must be False")
        self.sizes = sizes
        self.vision_tower = SiglipVisionModel._from_config(sizes.vision, dtype=dtype)
        self.projector = Projector(sizes.vision.hidden_size, sizes.text.hidden_size).to(dtype)
        self.language_model = Qwen2ForCausalLM._from_config(sizes.text, dtype=dtype)

    @property
    def device(self) -> torch.device:
        return self.projector.mlp[0].weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.projector.mlp[0].weight.dtype
