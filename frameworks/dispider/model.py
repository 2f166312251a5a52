"""Dispider's networks on stock transformers classes: CLIP tower, Qwen2 compressor, Qwen2 reaction LLM.

    arch = DispiderArchitecture.from_sizes("released")     # CLIP-L/14@224 + Qwen2-1.5B + Qwen2-7B
    model = DispiderModel(arch)                            # CLIPVisionModel, Qwen2Model, Qwen2ForCausalLM
    tokens = concat_2x2(clip_patch_tokens)                 # [F, 256, 1024] -> [F, 64, 4096]
    embeds = model.pool_projector(clip_tokens)             # [16*64 + 16*4 + 1, 1536] per clip

Custom pieces (spec §A3.3), each a few lines: the 2x2 adjacent-token concatenation, the PoolProjector
(per frame: the 64 tokens, 4 average-pooled slots of the 8x8 map, plus one clip-global mean token,
all through one MLP into the compressor), the silent head (Linear hidden -> 1), and the two
`mlp2x_gelu` projectors into the reaction LLM (CLIP tokens 4096 -> 3584, compressor states 1536 -> 3584).
The CLIP feature layer is hidden_states[-2] without CLS (LLaVA default; unverified for Dispider, the
stream compressor's config is not public) -- `select_layer` in the checkpoint's compressor config wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel, Qwen2Config, Qwen2ForCausalLM, Qwen2Model

CONCAT = 2  # 2x2 adjacent patch tokens -> one token of 4x the width


@dataclass
class DispiderArchitecture:
    """Shapes of the three networks plus the few Dispider constants that are not in any HF config."""

    vision: CLIPVisionConfig
    compressor: Qwen2Config
    reaction: Qwen2Config
    select_layer: int = -2
    pool_num: int = 4

    @classmethod
    def from_sizes(cls, name: str = "released") -> "DispiderArchitecture":
        from frameworks.common.model_sizes import dispider_configs

        vision, compressor, reaction = dispider_configs(name)
        return cls(vision, compressor, reaction)

    @property
    def grid(self) -> int:
        """Patches per side of the CLIP map (16 at 224 px / 14)."""
        return self.vision.image_size // self.vision.patch_size

    @property
    def tokens_per_frame(self) -> int:
        """Concatenated tokens per frame (64 at the released size)."""
        return (self.grid // CONCAT) ** 2

    @property
    def clip_token_width(self) -> int:
        return CONCAT * CONCAT * self.vision.hidden_size

    def __post_init__(self):
        if self.grid % CONCAT:
            raise ValueError(f"CLIP patch grid {self.grid}x{self.grid} must be even for the 2x2 concatenation")
        side = math.isqrt(self.pool_num)
        if side * side != self.pool_num or (self.grid // CONCAT) % side:
            raise ValueError(f"pool_num={self.pool_num} must be a square that tiles the "
                             f"{self.grid // CONCAT}x{self.grid // CONCAT} token map")


def concat_2x2(features: torch.Tensor) -> torch.Tensor:
    """[F, g*g, C] patch tokens -> [F, (g/2)^2, 4C]: each 2x2 block of neighbours becomes one token,
    channels ordered (top-left, top-right, bottom-left, bottom-right), blocks row-major."""
    frames, tokens, channels = features.shape
    grid = math.isqrt(tokens)
    if grid * grid != tokens or grid % CONCAT:
        raise ValueError(f"concat_2x2 needs an even square token grid, got {tokens} tokens per frame")
    half = grid // CONCAT
    blocks = features.view(frames, half, CONCAT, half, CONCAT, channels).permute(0, 1, 3, 2, 4, 5)
    return blocks.reshape(frames, half * half, CONCAT * CONCAT * channels)


def mlp2x_gelu(width_in: int, width_out: int) -> nn.Sequential:
    """LLaVA's `mlp2x_gelu` projector: Linear -> GELU -> Linear (keys `0.*` and `2.*`)."""
    return nn.Sequential(nn.Linear(width_in, width_out), nn.GELU(), nn.Linear(width_out, width_out))


class PoolProjector(nn.Module):
    """Clip tokens -> compressor embeddings: [frame tokens ++ pooled slots ++ one clip-global token].

    `forward(tokens [F, T, C], full=None)`: `tokens` are what the compressor reads per frame (the 64
    concatenated tokens, or fewer after a TOKENS-stage method); the pooled slots (pool_num per frame,
    means over a sqrt(pool_num)^2 tiling of the frame's token map) and the clip-global mean are taken
    from `full` ([F, T_full, C], the unpruned map; defaults to `tokens`). Returns
    [F*T + F*pool_num + 1, hidden]."""

    def __init__(self, width_in: int, width_out: int, pool_num: int = 4):
        super().__init__()
        self.mlp = mlp2x_gelu(width_in, width_out)
        self.pool_num = pool_num

    def slots(self, full: torch.Tensor) -> torch.Tensor:
        frames, tokens, channels = full.shape
        side, tiles = math.isqrt(tokens), math.isqrt(self.pool_num)
        if side * side != tokens or side % tiles:
            raise ValueError(f"PoolProjector: {tokens} tokens per frame do not tile into {self.pool_num} slots")
        cells = full.view(frames, tiles, side // tiles, tiles, side // tiles, channels)
        return cells.mean(dim=(2, 4)).reshape(frames * self.pool_num, channels)

    def forward(self, tokens: torch.Tensor, full: torch.Tensor | None = None) -> torch.Tensor:
        full = tokens if full is None else full
        flat_full = full.reshape(-1, full.shape[-1])
        clip_mean = flat_full.mean(dim=0, keepdim=True)
        return self.mlp(torch.cat([tokens.reshape(-1, tokens.shape[-1]), self.slots(full), clip_mean]))


class DispiderModel(nn.Module):
    """All Dispider weights under one module (our names; `loading.py` maps the released names)."""

    def __init__(self, arch: DispiderArchitecture):
        super().__init__()
        self.arch = arch
        self.vision_tower = CLIPVisionModel(arch.vision)
        self.pool_projector = PoolProjector(arch.clip_token_width, arch.compressor.hidden_size, arch.pool_num)
        self.compressor = Qwen2Model(arch.compressor)
        self.silent_head = nn.Linear(arch.compressor.hidden_size, 1, bias=False)
        self.reaction = Qwen2ForCausalLM(arch.reaction)
        self.clip_projector = mlp2x_gelu(arch.clip_token_width, arch.reaction.hidden_size)
        self.compress_projector = mlp2x_gelu(arch.compressor.hidden_size, arch.reaction.hidden_size)

    @property
    def device(self) -> torch.device:
        return self.silent_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.silent_head.weight.dtype


def build_random_model(arch: DispiderArchitecture, dtype: torch.dtype, device: torch.device, seed: int = 0) -> DispiderModel:
    """Random weights at `arch`'s shapes, created directly on `device` in `dtype` (a 7B model never
    materialises in fp32 on the host). For latency runs and CPU tests."""
    previous = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            torch.set_default_dtype(dtype)
            with torch.device(device):
                model = DispiderModel(arch)
        finally:
            torch.set_default_dtype(previous)
    return model.eval()
