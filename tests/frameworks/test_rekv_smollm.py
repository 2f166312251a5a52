"""Opt-in (STC_TEST_SMOLLM=1): the ReKV equivalence with a REAL language model — SmolLM2-135M-Instruct
(Llama architecture, real weights and attention patterns) as the LLM of a LLaVA-OneVision model whose
vision tower and projector are tiny and random. Prepare the weights once with
`bash scripts/rekv_fetch_smollm2.sh` (folder: $STC_SMOLLM_DIR or ~/.cache/stc/smollm2-135m-instruct-hf).
"""

import os
from pathlib import Path

import pytest
import torch

from frameworks.protocol import Query
from frameworks.registry import build_host
from frameworks.rekv.config import INIT_PROMPT

SMOLLM_DIR = Path(os.environ.get("STC_SMOLLM_DIR", Path.home() / ".cache/stc/smollm2-135m-instruct-hf"))
pytestmark = [
    pytest.mark.skipif(os.environ.get("STC_TEST_SMOLLM") != "1", reason="opt-in: set STC_TEST_SMOLLM=1"),
    pytest.mark.skipif(os.environ.get("STC_TEST_SMOLLM") == "1" and not (SMOLLM_DIR / "config.json").is_file(),
                       reason=f"{SMOLLM_DIR} missing: run scripts/rekv_fetch_smollm2.sh"),
]


def _llava_with_smollm(folder: Path) -> Path:
    """Save a LLaVA-OV checkpoint = tiny random SigLIP + projector + SmolLM2 (weights copied) + its tokenizer."""
    from transformers import AutoTokenizer, LlamaForCausalLM, LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    from frameworks.common.model_sizes import siglip_tiny_config

    llm = LlamaForCausalLM.from_pretrained(SMOLLM_DIR, dtype=torch.float32)
    text = llm.config.to_dict()
    text.update(tie_word_embeddings=False)
    vocab = llm.config.vocab_size
    config = LlavaOnevisionConfig(vision_config=siglip_tiny_config().to_dict(), text_config=text,
                                  image_token_index=vocab - 2, video_token_index=vocab - 1, vision_feature_layer=-1,
                                  vision_feature_select_strategy="full", tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    model.model.language_model.load_state_dict(llm.model.state_dict())
    with torch.no_grad():
        model.lm_head.weight.copy_(llm.lm_head.weight)
        projector = model.model.multi_modal_projector  # scale visual tokens to the LLM's embedding scale
        projector.linear_2.weight.mul_(llm.model.embed_tokens.weight.std() / 0.02)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(SMOLLM_DIR).save_pretrained(folder)
    return folder


def test_smollm_streaming_context_matches_stock_model(rekv, tmp_path):
    checkpoint = _llava_with_smollm(tmp_path / "llava-smollm")
    host = build_host("rekv", {"model_path": str(checkpoint), "dtype": "float32", "device": "cpu", "n_local": 100_000})
    assert type(host.stack.layers[0]).__name__ == "LlamaDecoderLayer"
    frames = rekv.video(6)
    host.ingest(frames[:4])
    host.ingest(frames[4:])
    query = Query(prompt="What is shown in the video?", answer_prefix="The video shows", max_new_tokens=8)
    prompt_text = "\nWhat is shown in the video?<|im_end|><|im_start|>assistant\nThe video shows"
    ours = host.prompt_logits(query)
    expected = rekv.reference_logits(host_loaded(host), frames, prompt_text, INIT_PROMPT)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-3)
    assert (ours[-1].argmax() == expected[-1].argmax()).item()
    text = host.answer(query)
    assert isinstance(text, str) and text.strip()


def host_loaded(host):
    """The host's model/codec/pixels in the shape `reference_logits` expects."""
    from frameworks.common.llava_loading import LoadedLlava

    return LoadedLlava(host.model, host.codec, host.pixel_spec)
