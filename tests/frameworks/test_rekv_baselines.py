"""Baselines inside the ReKV host (tiny random LLaVA-OV: 81 SigLIP tokens pooled to 25 per frame):
what reaches the KV store is exactly the method's output, recomputed independently of the host."""

import pytest
import torch

from frameworks.protocol import Query
from stc.compression import CompressionSpec, TokenSide


def stored_tokens_keys(loaded, tokens):
    """Pre-RoPE layer-0 keys the LM computes for visual tokens [n, hidden]."""
    layer0 = loaded.model.model.language_model.layers[0]
    with torch.no_grad():
        return layer0.self_attn.k_proj(layer0.input_layernorm(tokens))


def host_keys(host, blocks):
    keys, _ = host.store.gather(0, torch.arange(blocks))
    return keys.transpose(0, 1).reshape(keys.shape[1], -1)


def test_random_drop_blocks_hold_the_randomly_kept_tokens(rekv):
    loaded = rekv.loaded()
    spec = {"random_drop": {"tokens_per_frame": 6, "seed": 5}}
    host = rekv.host(loaded, spec, n_local=10_000, frames_per_chunk=2)
    frames = rekv.video(5)
    host.ingest(frames)
    assert host.block_tokens == 6 and host.store.num_blocks == 5
    assert (host.timings.visual_tokens_in, host.timings.visual_tokens_kept) == (125, 30)
    features = rekv.host(loaded).frame_features(frames)
    method = CompressionSpec.from_mapping(spec).build()[0]
    kept = torch.cat([method.compress(features[i:i + 2], TokenSide())[0] for i in (0, 2, 4)])
    torch.testing.assert_close(host_keys(host, 5), stored_tokens_keys(loaded, kept.reshape(-1, kept.shape[-1])),
                               rtol=1e-5, atol=1e-5)
    assert host.answer(Query(prompt="what?", max_new_tokens=2)) is not None


def test_visionzip_side_attention_is_the_stock_eager_attention_pooled(rekv):
    """The host's attention side info = HF eager `output_attentions` of the feature layer, averaged over
    heads and queries, pooled 2x like the tokens; dominant-only VisionZip keeps its top-k."""
    from frameworks.common.llava_video import pool_2x, preprocess_frames

    loaded = rekv.loaded()
    frames = rekv.video(3)
    host = rekv.host(loaded, {"visionzip": {"tokens_per_frame": 6, "contextual_ratio": 0.0}}, n_local=10_000,
                     frames_per_chunk=3)
    host.ingest(frames)
    tower = loaded.model.model.vision_tower
    features = rekv.host(loaded).frame_features(frames)
    with torch.no_grad():
        previous = tower.config._attn_implementation
        tower.config._attn_implementation = "eager"
        try:
            pixels = preprocess_frames(frames, loaded.pixels, loaded.model.device, tower.dtype)
            layer = loaded.model.config.vision_feature_layer % (tower.config.num_hidden_layers + 1)
            attentions = tower(pixel_values=pixels, output_attentions=True).attentions[layer - 1]
        finally:
            tower.config._attn_implementation = previous
    received = pool_2x(attentions.mean(dim=(1, 2))[..., None])[..., 0]
    top = torch.topk(received, 6, dim=1).indices.sort(dim=1).values
    kept = torch.gather(features, 1, top[..., None].expand(-1, -1, features.shape[-1]))
    torch.testing.assert_close(host_keys(host, 3), stored_tokens_keys(loaded, kept.reshape(-1, kept.shape[-1])),
                               rtol=1e-5, atol=1e-5)


def test_visionzip_with_contextual_tokens_runs_at_budget(rekv):
    host = rekv.host(rekv.loaded(), {"visionzip": {"tokens_per_frame": 8}}, n_local=10_000)
    host.ingest(rekv.video(3))
    stats = host.timings.extra["compression"]["visionzip"]
    assert host.block_tokens == 8 and (stats["dominant_per_frame"], stats["contextual_per_frame"]) == (7, 1)
    assert host.timings.visual_tokens_kept == 24


@pytest.mark.parametrize("anchor,chunk", [("video", 3), ("memory", 1)])
def test_vidcom2_chunk_budgets_fill_fixed_blocks(rekv, anchor, chunk):
    loaded = rekv.loaded()
    spec = {"vidcom2": {"tokens_per_frame": 5, "anchor": anchor, "frame_budgets": anchor == "video"}}
    host = rekv.host(loaded, spec, n_local=10_000, frames_per_chunk=chunk)
    frames = rekv.video(6)
    host.ingest(frames)
    assert host.block_tokens == 5 and host.store.num_blocks == 6 and host.timings.visual_tokens_kept == 30
    features = rekv.host(loaded).frame_features(frames)
    method = CompressionSpec.from_mapping(spec).build()[0]
    kept = torch.cat([method.compress(features[i:i + chunk], TokenSide())[0] for i in range(0, 6, chunk)])
    torch.testing.assert_close(host_keys(host, 6), stored_tokens_keys(loaded, kept.reshape(-1, kept.shape[-1])),
                               rtol=1e-5, atol=1e-5)


def test_tome_merges_in_the_tower_and_skips_pooling(rekv):
    from frameworks.common.llava_video import preprocess_frames

    loaded = rekv.loaded()
    host = rekv.host(loaded, {"tome": {"tokens_per_frame": 12}}, n_local=10_000, frames_per_chunk=2)
    assert host.grid is None and not host.pools and host.block_tokens == 12
    frames = rekv.video(4)
    host.ingest(frames)
    timings = host.timings
    assert (timings.visual_tokens_in, timings.visual_tokens_kept) == (100, 48)
    stats = timings.extra["compression"]["tome"]
    assert stats["tokens_in"] == 4 * 81 and stats["tokens_kept"] == 48 and stats["schedule"] == [33, 24, 12]
    # independent: a fresh ToMe on the same tower, stock projector, no pooling
    host.close()
    model = loaded.model.model
    method = CompressionSpec.from_mapping({"tome": {"tokens_per_frame": 12}}).build()[0]
    method.attach(model.vision_tower)
    try:
        with torch.no_grad():
            pixels = preprocess_frames(frames, loaded.pixels, loaded.model.device, model.vision_tower.dtype)
            hidden = model.vision_tower(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
            tokens = model.multi_modal_projector(hidden)
    finally:
        method.detach()
    assert tokens.shape[:2] == (4, 12)
    torch.testing.assert_close(host_keys(host, 4), stored_tokens_keys(loaded, tokens.reshape(-1, tokens.shape[-1])),
                               rtol=1e-4, atol=1e-4)


def test_tome_budget_the_tower_cannot_reach_fails_at_host_build(rekv):
    with pytest.raises(ValueError, match=r"compression\.tome\.tokens_per_frame=6"):
        rekv.host(rekv.loaded(), {"tome": {"tokens_per_frame": 6}})
    with pytest.raises(ValueError, match=r"compression\.random_drop\.tokens_per_frame=26 exceeds the 25 tokens"):
        rekv.host(rekv.loaded(), {"random_drop": {"tokens_per_frame": 26}})


# ---- DyCoke: variable-size frame blocks and decode-time KV pruning ------------------------------------
def test_dycoke_ttm_variable_blocks_match_the_stock_model_on_the_kept_tokens(rekv):
    """Frames keep [25, 7, 7, 7, 25, ...] tokens: the store holds exactly those, and the answer context
    [init, kept tokens, prompt] gives the stock LM's logits (positions contiguous per layer)."""
    loaded = rekv.loaded(seed=4)
    host = rekv.host(loaded, {"dycoke_ttm": {}}, n_local=10_000, frames_per_chunk=3)
    frames = rekv.video(6, seed=4)
    host.ingest(frames)
    assert host.variable_blocks and host.store.lengths == [25, 7, 7, 7, 25, 7]
    assert host.timings.visual_tokens_kept == 78
    features = rekv.host(loaded).frame_features(frames)
    method = CompressionSpec.from_mapping({"dycoke_ttm": {}}).build()[0]
    kept = torch.cat(method.compress(features, TokenSide())[0])
    torch.testing.assert_close(host_keys(host, 6), stored_tokens_keys(loaded, kept), rtol=1e-5, atol=1e-5)
    query = Query(prompt="what?", answer_prefix="Best option: (")
    ours = host.prompt_logits(query)
    model, codec = loaded.model, loaded.codec
    with torch.no_grad():
        embed = model.get_input_embeddings()
        init = embed(torch.tensor(codec.encode(host.config.init_prompt)))
        prompt_ids = torch.tensor(host._prompt_ids(query))
        embeds = torch.cat([init, kept, embed(prompt_ids)])[None]
        hidden = model.model.language_model(inputs_embeds=embeds).last_hidden_state
        expected = model.lm_head(hidden)[0, -len(prompt_ids):]
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_layered_answer_path_equals_the_plain_path_when_nothing_is_pruned(rekv):
    """dycoke_kv with the released switch (no pruning) routes answers through the layered cache: with
    per-layer retrieval of 2 of 5 blocks it must reproduce the plain host exactly."""
    loaded = rekv.loaded(seed=2, num_hidden_layers=4)
    frames = rekv.video(5, seed=2)
    query = Query(prompt="what is it?", max_new_tokens=5)
    plain = rekv.host(loaded, n_local=10_000, retrieve_size=2)
    plain.ingest(frames)
    hooked = rekv.host(loaded, {"dycoke_kv": {"layer": 1, "apply_pruning": False}}, n_local=10_000, retrieve_size=2)
    hooked.ingest(frames)
    torch.testing.assert_close(hooked.prompt_logits(query), plain.prompt_logits(query), rtol=1e-5, atol=1e-5)
    assert hooked.answer(query) == plain.answer(query)
    selections = {tuple(s.tolist()) for s in plain._last_selection}
    assert len(selections) > 1  # layers really retrieved different blocks


def test_dycoke_kv_prunes_deeper_layers_at_every_decoding_step(rekv, monkeypatch):
    import frameworks.rekv.answer_context as answer_context

    calls = []
    original = answer_context.prefix_causal_attention

    def spy(queries, keys, values, scale, masks=None):
        calls.append((queries.shape[1], keys.shape[1]))
        return original(queries, keys, values, scale, masks)

    monkeypatch.setattr(answer_context, "prefix_causal_attention", spy)
    loaded = rekv.loaded(num_hidden_layers=4)
    host = rekv.host(loaded, {"dycoke_kv": {"layer": 1, "prune_ratio": 0.6}}, n_local=10_000)
    host.ingest(rekv.video(4))
    host.answer(Query(prompt="what?", max_new_tokens=3))
    n_init = host.window.n_init
    decode = [keys for queries, keys in calls if queries == 1]
    assert len(decode) == 2 * 4  # 2 decoding steps (the 3rd token needs no forward) x 4 layers
    prompt = [keys for queries, keys in calls if queries > 1][0]  # prompt pre-fill: full context
    image, kept = 4 * 25, round(0.4 * 100)
    for step in range(2):
        full = prompt + step + 1
        assert decode[4 * step:4 * step + 4] == [full, full, full - image + kept, full - image + kept]
    stats = host.compression.stats()["dycoke_kv"]
    assert stats["decode_steps"] == 2 and stats["kept_image_tokens"] == kept and stats["image_tokens"] == image
    assert prompt > n_init + image


# ---- StreamDyCoke: the bounded store -----------------------------------------------------------------
@pytest.mark.parametrize("policy", ["fifo", "lrr", "decay"])
def test_streamdycoke_bounds_the_store_and_answers_anytime(rekv, policy):
    loaded = rekv.loaded()
    spec = {"random_drop": {"tokens_per_frame": 5}, "streamdycoke_cache": {"capacity": 20, "eviction_policy": policy}}
    host = rekv.host(loaded, spec, n_local=10_000, frames_per_chunk=2, retrieve_size=2)
    frames = rekv.video(12)
    for first in range(0, 12, 3):  # answer every 3 frames without re-pre-filling
        host.ingest(frames[first:first + 3])
        assert host.store.num_blocks * 5 <= 20 and host.store.slot_count <= 4
        assert host.answer(Query(prompt="what?", max_new_tokens=2)) is not None
    assert host.timings.frames == 12 and host.timings.visual_tokens_kept == 60  # every frame pre-filled once
    stats = host.compression.stats()["streamdycoke_cache"]
    assert stats["peak_tokens"] == 20 and stats["evictions"] == 8 and stats["restored"] > 0
    assert len(host.store.pages) == 1  # page_blocks = 16 >= 4 live blocks: the store never grew
    if policy == "fifo":
        assert host.store.ids == [8, 9, 10, 11]
        # the kept blocks hold exactly what an unbounded store holds for those frames (same chunking, answers)
        plain = rekv.host(loaded, {"random_drop": {"tokens_per_frame": 5}}, n_local=10_000, frames_per_chunk=2,
                          retrieve_size=2)
        for first in range(0, 12, 3):
            plain.ingest(frames[first:first + 3])
            plain.answer(Query(prompt="what?", max_new_tokens=2))
        for layer in range(host.stack.num_layers):
            kept, full = host.store.gather(layer, torch.arange(4)), plain.store.gather(layer, torch.tensor([8, 9, 10, 11]))
            assert torch.equal(kept[0], full[0]) and torch.equal(kept[1], full[1])
    # the blocks that remain are exactly what retrieval and answering see
    keys, _ = host.store.gather(0, torch.arange(host.store.num_blocks))
    assert keys.shape[1] == 20


def test_streamdycoke_ttm_and_cache_on_rekv(rekv):
    host = rekv.host(rekv.loaded(), {"streamdycoke_ttm": {}, "streamdycoke_cache": {"capacity": 75}},
                     n_local=10_000, frames_per_chunk=2)
    host.ingest(rekv.video(9))
    assert host.variable_blocks and host.store.num_blocks == 3  # 75 tokens = 3 blocks of 25 (physical size)
    assert host.store.lengths[0] <= 25 and host.timings.visual_tokens_kept < 9 * 25
    assert host.answer(Query(prompt="what?", max_new_tokens=2)) is not None
