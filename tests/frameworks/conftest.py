"""Fixtures for host tests: tiny random-weight LLaVA-OneVision models (explicit configs, CPU, fp32)."""

from types import SimpleNamespace

import pytest
import torch

from tests.videos import drifting_video


def tiny_config(**text_overrides):
    """LLaVA-OV "tiny" from model_sizes (toy SigLIP 63 px / patch 7 -> 81 tokens pooled to 25, 2-layer
    Qwen2 with GQA 4/2). Text overrides (e.g. 3 layers) go to the Qwen2 config."""
    from frameworks.common.model_sizes import llava_onevision_config, qwen2_text_config

    if not text_overrides:
        return llava_onevision_config("tiny")
    return llava_onevision_config("tiny", text_config=qwen2_text_config("tiny", **text_overrides))


def tiny_loaded(seed=0, device="cpu", dtype="float32", **text_overrides):
    """Tiny model whose LM attention is made sharp (see `sharpen_attention`)."""
    from frameworks.common.llava_loading import build_random_llava_onevision

    loaded = build_random_llava_onevision(tiny_config(**text_overrides), dtype=dtype, device=device, seed=seed)
    sharpen_attention(loaded.model.model.language_model, seed)
    return loaded


def sharpen_attention(language_model, seed, std=0.15):
    """Default init (std 0.02, zero biases) gives near-uniform attention, under which position errors
    (RoPE, masks) change logits by < 1e-5 and would go unnoticed. Larger q/k weights and non-zero q/k/v
    biases make scores O(5), so any wrong position or mask shows up far above the tolerance."""
    generator = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        for layer in language_model.layers:
            attn = layer.self_attn
            for proj in (attn.q_proj, attn.k_proj):
                proj.weight.copy_(torch.randn(proj.weight.shape, generator=generator) * std)  # copy_ casts/moves
            for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
                proj.bias.copy_(torch.randn(proj.bias.shape, generator=generator) * 0.5)


def make_host(loaded=None, stc=None, **settings):
    from frameworks.rekv import ReKVConfig, ReKVHost

    settings = {"dtype": "float32", "device": "cpu", **settings}  # informational: the model is passed in
    return ReKVHost(loaded or tiny_loaded(), ReKVConfig(**settings), stc)


def video(count, height=48, width=56, seed=0, drift=6):
    """uint8 [count, H, W, 3]: tests/videos.py `drifting_video`."""
    return drifting_video(count, height, width, seed, drift)


def reference_logits(loaded, frames, prompt_text, init_prompt, generated=()):
    """Stock HF logits at the prompt (+generated) positions for [init prompt, all frames (stock
    `get_video_features`: projector + stock `apply_pooling`; a trailing newline, if a version appends
    one, is dropped), prompt text]: one causal pass of the stock language model, then `lm_head`."""
    from frameworks.common.llava_video import preprocess_frames

    model, codec = loaded.model, loaded.codec
    with torch.no_grad():
        pixels = preprocess_frames(frames, loaded.pixels, model.device, model.dtype)
        video_tokens = model.model.get_video_features(pixel_values=pixels[None]).pooler_output[0]
        video_tokens = video_tokens[: (video_tokens.shape[0] // frames.shape[0]) * frames.shape[0]]
        embed = model.get_input_embeddings()
        prompt_ids = torch.tensor(codec.encode(prompt_text) + list(generated), device=model.device)
        init_ids = torch.tensor(codec.encode(init_prompt), device=model.device)
        embeds = torch.cat([embed(init_ids), video_tokens, embed(prompt_ids)])[None]
        hidden = model.model.language_model(inputs_embeds=embeds).last_hidden_state
        return model.lm_head(hidden)[0, -len(prompt_ids):].float()


@pytest.fixture
def rekv():
    """Factories: rekv.loaded(seed, **text), rekv.host(loaded, stc, **settings), rekv.video(n), rekv.config(),
    rekv.reference_logits(loaded, frames, prompt_text, init_prompt, generated=())."""
    return SimpleNamespace(loaded=tiny_loaded, host=make_host, video=video, config=tiny_config,
                           reference_logits=reference_logits)


@pytest.fixture
def exact_fp32_matmul():
    """CUDA tests comparing fp32 paths: TF32 off for the test (restored afterwards)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
