"""STC inside the ReKV host: the pruner's k tokens per frame are what reaches the KV store; the cacher's
selective path runs on non-reference frames; reset/close restore clean state."""

import torch

from frameworks.protocol import Query
from stc import CacherConfig, PrunerConfig, STCConfig, STCPruner


def _pruned(features, k, chunk):
    """Reference pruning in the host's chunking (the pruner picks its scoring channels on its first call)."""
    pruner = STCPruner(PrunerConfig(tokens_per_frame=k))
    return torch.cat([pruner.compress(features[i:i + chunk])[0] for i in range(0, features.shape[0], chunk)])


def test_pruner_sends_exactly_k_tokens_per_frame_and_they_are_the_pruned_tokens(rekv):
    loaded = rekv.loaded()
    k = 7
    stc = STCConfig(pruner=PrunerConfig(tokens_per_frame=k))
    host = rekv.host(loaded, stc=stc, n_local=10_000, frames_per_chunk=2)
    frames = rekv.video(5)
    host.ingest(frames)
    timings = host.timings
    assert host.block_tokens == k and host.store.num_blocks == 5
    assert timings.visual_tokens_in == 5 * 25 and timings.visual_tokens_kept == 5 * k
    assert host.window.length == 5 * k
    # independent recomputation: stock tower/projector/pool (no cacher here) + a fresh pruner
    reference = rekv.host(loaded, n_local=10_000)
    features = reference.frame_features(frames)
    kept = _pruned(features, k, chunk=2)
    layer0 = loaded.model.model.language_model.layers[0]
    with torch.no_grad():
        expected_keys = layer0.self_attn.k_proj(layer0.input_layernorm(kept.reshape(-1, kept.shape[-1])))
    stored_keys, _ = host.store.gather(0, torch.arange(5))  # pre-RoPE, [Hkv, 5k, D]
    stored = stored_keys.transpose(0, 1).reshape(5 * k, -1)
    torch.testing.assert_close(stored, expected_keys, rtol=1e-5, atol=1e-5)
    assert host.answer(Query(prompt="what?", max_new_tokens=2)) is not None


def test_pruned_stream_still_matches_stock_model_on_the_kept_tokens(rekv):
    """With pruning, the LLM sees [init, kept tokens, prompt] at contiguous positions: equal to the stock
    LM run on exactly that sequence (no position bookkeeping needed)."""
    loaded = rekv.loaded(seed=4)
    k = 9
    host = rekv.host(loaded, stc=STCConfig(pruner=PrunerConfig(tokens_per_frame=k)), n_local=10_000)
    frames = rekv.video(4, seed=4)
    host.ingest(frames)
    query = Query(prompt="what?", answer_prefix="Best option: (")
    ours = host.prompt_logits(query)
    features = rekv.host(loaded).frame_features(frames)
    kept = _pruned(features, k, chunk=1)
    model, codec = loaded.model, loaded.codec
    with torch.no_grad():
        embed = model.get_input_embeddings()
        init = embed(torch.tensor(codec.encode(host.config.init_prompt)))
        prompt_ids = torch.tensor(host._prompt_ids(query))
        embeds = torch.cat([init, kept.reshape(-1, kept.shape[-1]), embed(prompt_ids)])[None]
        hidden = model.model.language_model(inputs_embeds=embeds).last_hidden_state
        expected = model.lm_head(hidden)[0, -len(prompt_ids):]
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_cacher_runs_selective_path_on_non_reference_frames(rekv):
    loaded = rekv.loaded()
    stc = STCConfig(cacher=CacherConfig(update_ratio=0.25, cache_interval=2))
    host = rekv.host(loaded, stc=stc, frames_per_chunk=3)
    frames = rekv.video(6)
    host.ingest(frames)
    timings = host.timings
    assert (timings.vit_reference_frames, timings.vit_selective_frames) == (3, 3)
    stats = host.compression.stats()["cacher"]
    assert stats["tokens_recomputed"] == 20  # floor(81 * 0.25) tokens per layer on the last selective frame
    host.reset()
    assert (host.timings.vit_reference_frames, host.timings.vit_selective_frames) == (0, 0)
    host.ingest(frames[:1])
    assert host.compression.stats()["cacher"]["last_frame_reference"] is True  # new video starts with a reference
    # the selective path really changed the features of non-reference frames (not a silent full pass)
    host.reset()
    cached_features = host.frame_features(frames[:2])
    host.close()
    full_features = rekv.host(loaded).frame_features(frames[:2])
    torch.testing.assert_close(cached_features[0], full_features[0])  # reference frame: exact
    assert not torch.allclose(cached_features[1], full_features[1], atol=1e-6)


def test_close_detaches_cacher_and_restores_tower_classes(rekv):
    loaded = rekv.loaded()
    layers = loaded.model.model.vision_tower.encoder.layers
    original = [type(layer) for layer in layers]
    host = rekv.host(loaded, stc=STCConfig(cacher=CacherConfig()))
    assert [type(layer) for layer in layers] != original
    host.close()
    assert [type(layer) for layer in layers] == original


def test_reset_clears_stream_and_pruner_history(rekv):
    loaded = rekv.loaded()
    stc = STCConfig(pruner=PrunerConfig(tokens_per_frame=5))
    host = rekv.host(loaded, stc=stc, n_local=10_000)
    frames = rekv.video(4)
    host.ingest(frames)
    first = host.prompt_logits(Query(prompt="q"))
    host.reset()
    assert host.store.num_blocks == 0 and host.window.length == 0 and host.timings.frames == 0
    host.ingest(frames)
    torch.testing.assert_close(host.prompt_logits(Query(prompt="q")), first, rtol=0, atol=0)


def test_chunked_ingest_with_the_cacher_equals_one_frame_per_call(rekv):
    """frames_per_chunk=3 with chunks starting off the N=2 grid (ingest of 1 frame, then 6) gives the
    same tower features and the same answer logits as one frame per call (the chunked-path bug made
    frame 1 read the reference of frame 2)."""
    loaded = rekv.loaded()
    frames = rekv.video(7)
    stc = STCConfig(cacher=CacherConfig(update_ratio=0.25, cache_interval=2))
    runs = {}
    for chunk, calls in ((1, (frames,)), (3, (frames[:1], frames[1:]))):
        host = rekv.host(loaded, stc=stc, frames_per_chunk=chunk)
        seen = []
        hook = host.projector.register_forward_hook(lambda m, i, o: seen.append(i[0]))
        for part in calls:
            host.ingest(part)
        hook.remove()
        runs[chunk] = (torch.cat(seen), host.prompt_logits(Query(prompt="what happens?")))
        host.close()
    torch.testing.assert_close(runs[3][0], runs[1][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(runs[3][1], runs[1][1], rtol=1e-4, atol=1e-4)
