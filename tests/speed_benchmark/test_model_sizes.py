"""The explicit size presets: released sizes by config arithmetic (no 7B weights on CPU), tiny ones built."""

import pytest
import torch

from frameworks.common import model_sizes as ms


def test_llava_ov_7b_matches_released_sizes():
    cfg = ms.llava_onevision_config("7b")
    v, t = cfg.vision_config, cfg.text_config
    assert (v.hidden_size, v.intermediate_size, v.num_hidden_layers, v.num_attention_heads) == (1152, 4304, 26, 16)
    assert (v.image_size, v.patch_size) == (384, 14)
    assert ms.tokens_per_frame(cfg) == 729 and ms.pooled_tokens_per_frame(cfg) == 196
    assert (t.hidden_size, t.intermediate_size, t.num_hidden_layers) == (3584, 18944, 28)
    assert (t.num_attention_heads, t.num_key_value_heads, t.vocab_size) == (28, 4, 152128)
    assert t.rope_parameters["rope_theta"] == 1e6 and cfg.vision_feature_select_strategy == "full"


def test_other_released_sizes():
    assert ms.llava_onevision_config("0.5b").text_config.hidden_size == 896
    clip = ms.clip_vit_l14_config(224)
    assert (clip.hidden_size, clip.num_hidden_layers, ms.tokens_per_frame(clip)) == (1024, 24, 257)
    assert ms.qwen2_text_config("1.5b").num_key_value_heads == 2
    vl = ms.qwen2_vl_config("7b")
    assert (vl.vision_config.depth, vl.vision_config.embed_dim, vl.text_config.hidden_size) == (32, 1280, 3584)
    assert vl.text_config.rope_parameters["mrope_section"] == [16, 24, 24]
    assert ms.siglip_so400m_config(27).num_hidden_layers == 27


def test_tiny_llava_ov_builds_and_pools_consistently():
    from transformers import LlavaOnevisionForConditionalGeneration

    cfg = ms.llava_onevision_config("tiny")
    model = LlavaOnevisionForConditionalGeneration(cfg).eval()
    assert ms.tokens_per_frame(cfg) == 81 and ms.pooled_tokens_per_frame(cfg) == 25
    size = cfg.vision_config.image_size
    with torch.no_grad():
        out = model.model.vision_tower(pixel_values=torch.randn(2, 3, size, size))
        feats = model.model.multi_modal_projector(out.last_hidden_state)
        pooled = model.model.apply_pooling(feats)
    assert out.last_hidden_state.shape == (2, 81, 64)
    assert pooled.shape == (2, 25, cfg.text_config.hidden_size)
    assert cfg.image_token_index < cfg.text_config.vocab_size


def test_tiny_qwen2_vl_builds():
    from transformers import Qwen2VLForConditionalGeneration

    model = Qwen2VLForConditionalGeneration(ms.qwen2_vl_config("tiny"))
    assert len(model.model.visual.blocks) == 2


def test_unknown_preset_names_the_choices():
    with pytest.raises(KeyError, match="llava_ov_7b"):
        ms.build_config("llava_ov_13b")
    with pytest.raises(ValueError, match="Qwen2 size"):
        ms.qwen2_text_config("3b")
