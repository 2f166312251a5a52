"""STC-Cacher on tiny random SigLIP/CLIP towers: exactness, schedule, multi-stream, attach/detach."""

import pytest
import torch
import torch.nn.functional as F

from stc import CacherConfig, attach_cacher
from stc.integrations.hf_vit import find_encoder_layers


def run_stream(model, frames, **kwargs):
    """Feed frames one per call (as streaming does); returns a list of outputs."""
    with torch.no_grad():
        return [model(pixel_values=frames[i : i + 1], **kwargs) for i in range(frames.shape[0])]


def count_query_rows(model):
    """Hook every q_proj and record how many token rows it projected per call."""
    rows = []
    handles = [
        layer.self_attn.q_proj.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[0] * i[0].shape[1]))
        for layer in find_encoder_layers(model)[1]
    ]
    return rows, handles


@pytest.mark.parametrize("kind", ["siglip", "clip"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_full_update_ratio_equals_unpatched_tower_in_every_layer(towers, kind, attn):
    model = getattr(towers, kind)(attn=attn)
    frames = towers.frames(5)
    expected = run_stream(model, frames, output_hidden_states=True)
    with attach_cacher(model, CacherConfig(update_ratio=1.0, cache_interval=3)) as stream:
        got = run_stream(model, frames, output_hidden_states=True)
        assert stream.stats.selective_frames == 3  # frames 1, 2, 4 took the selective path
    for e, g in zip(expected, got):
        assert len(e.hidden_states) == len(g.hidden_states) == 4
        for a, b in zip(e.hidden_states, g.hidden_states):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 3e-2), (torch.float16, 3e-3)])
def test_full_update_ratio_matches_in_half_precision(towers, dtype, tol):
    model = towers.siglip(dtype=dtype)
    frames = towers.frames(3).to(dtype)
    expected = run_stream(model, frames)
    with attach_cacher(model, CacherConfig(update_ratio=1.0, cache_interval=2)):
        got = run_stream(model, frames)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g.last_hidden_state.float(), e.last_hidden_state.float(), rtol=tol, atol=tol)


def test_identical_frames_reproduce_the_full_tower(towers):
    model = towers.siglip()
    frames = towers.frames(1).repeat(4, 1, 1, 1)
    expected = run_stream(model, frames)
    with attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=4)) as stream:
        got = run_stream(model, frames)
        assert stream.stats.selective_frames == 3
    for e, g in zip(expected, got):
        torch.testing.assert_close(g.last_hidden_state, e.last_hidden_state, rtol=1e-5, atol=1e-5)


def test_reference_schedule_and_reset(towers):
    model = towers.siglip()
    frames = towers.frames(7)
    handle = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=3))
    kinds = []
    with torch.no_grad():
        for i in range(7):
            model(pixel_values=frames[i : i + 1])
            kinds.append(handle.stream.stats.last_frame_reference)
        assert kinds == [True, False, False, True, False, False, True]
        handle.stream.reset()
        model(pixel_values=frames[:1])
        assert handle.stream.stats.last_frame_reference is True and handle.stream.frame_idx == 1
    handle.detach()


def test_selective_frames_recompute_only_k_tokens_and_differ_from_full(towers):
    model = towers.siglip()
    frames = towers.frames(4, drift=0.3)
    expected = run_stream(model, frames)
    handle = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=4))
    rows, hooks = count_query_rows(model)
    got = run_stream(model, frames)
    for h in hooks:
        h.remove()
    tokens, layers, k = 16, 3, 4  # 28/7 = 4x4 patches; k = floor(16 * 0.25)
    assert rows == [tokens] * layers + [k] * layers * 3  # frame 0 full, frames 1-3 selective
    assert handle.stream.stats.tokens_recomputed == k and handle.stream.stats.tokens_per_frame == tokens
    torch.testing.assert_close(got[0].last_hidden_state, expected[0].last_hidden_state)
    for e, g in zip(expected[1:], got[1:]):
        assert not torch.allclose(g.last_hidden_state, e.last_hidden_state, atol=1e-3)
    handle.detach()


@pytest.mark.parametrize("reuse", ["both", "attention", "mlp"])
def test_selective_layer_follows_the_method_pseudocode(towers, reuse):
    """One-layer tower: the selective frame's layer output equals a naive transcription of §2.4, and of
    the reuse-target ablations (paper Table 4): attention-only and MLP-only reuse."""
    model = towers.siglip(layers=1, attn="eager")
    layer = model.encoder.layers[0]
    frames = towers.frames(2, drift=0.5)
    with torch.no_grad():
        h_ref = model.embeddings(frames[:1])
        h_cur = model.embeddings(frames[1:2])
        x_ref, x_cur = layer.layer_norm1(h_ref)[0], layer.layer_norm1(h_cur)[0]
        attn = layer.self_attn
        k_ref, v_ref = attn.k_proj(x_ref), attn.v_proj(x_ref)

        def mha(q, k, v):
            heads = lambda t: t.view(t.shape[0], 4, 8).transpose(0, 1)  # noqa: E731
            w = torch.softmax(heads(q) @ heads(k).transpose(1, 2) * attn.scale, dim=-1)
            return attn.out_proj((w @ heads(v)).transpose(0, 1).reshape(q.shape[0], 32))

        a_ref = mha(attn.q_proj(x_ref), k_ref, v_ref)
        m_ref = layer.mlp(layer.layer_norm2(h_ref[0] + a_ref))
        keys = attn.k_proj(x_cur)
        dynamic = torch.argsort(F.cosine_similarity(keys, k_ref, dim=-1))[:4]
        values = v_ref.clone()
        values[dynamic] = attn.v_proj(x_cur[dynamic])
        a_full = a_ref.clone()
        a_full[dynamic] = mha(attn.q_proj(x_cur[dynamic]), keys, values)
        h2 = h_cur[0] + a_full
        m_full = m_ref.clone()
        m_full[dynamic] = layer.mlp(layer.layer_norm2(h2[dynamic]))
        expected = h2 + m_full
        if reuse == "attention":  # static tokens reuse A_ref; the MLP runs on every token
            expected = h2 + layer.mlp(layer.layer_norm2(h2))
        if reuse == "mlp":  # attention runs on every token; static tokens reuse M_ref
            h2 = h_cur[0] + mha(attn.q_proj(x_cur), keys, attn.v_proj(x_cur))
            m_mix = m_ref.clone()
            m_mix[dynamic] = layer.mlp(layer.layer_norm2(h2[dynamic]))
            expected = h2 + m_mix

        with attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=2, reuse=reuse)):
            model(pixel_values=frames[:1])
            got = model(pixel_values=frames[1:2], output_hidden_states=True).hidden_states[1][0]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_batched_frames_of_one_stream_equal_frame_by_frame(towers):
    model = towers.siglip()
    frames = towers.frames(6)
    handle = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=2))
    one_by_one = torch.cat([o.last_hidden_state for o in run_stream(model, frames)])
    handle.stream.reset()
    with torch.no_grad():
        batched = model(pixel_values=frames).last_hidden_state
    torch.testing.assert_close(batched, one_by_one, rtol=1e-5, atol=1e-5)
    assert handle.stream.stats.reference_frames == 3 and handle.stream.stats.selective_frames == 3


def test_two_interleaved_streams_equal_each_stream_alone(towers):
    model = towers.siglip()
    a, b = towers.frames(5, seed=1), towers.frames(5, seed=2)
    handle = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=2))
    alone_a = run_stream(model, a)
    handle.stream.reset()
    alone_b = run_stream(model, b)
    sa, sb = handle.new_stream(), handle.new_stream()
    with torch.no_grad():
        for i in range(5):
            with handle.use(sa):
                out_a = model(pixel_values=a[i : i + 1]).last_hidden_state
            with handle.use(sb):
                out_b = model(pixel_values=b[i : i + 1]).last_hidden_state
            torch.testing.assert_close(out_a, alone_a[i].last_hidden_state, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(out_b, alone_b[i].last_hidden_state, rtol=1e-5, atol=1e-5)
    assert sa.stats.selective_frames == sb.stats.selective_frames == 2


def test_batch_of_three_streams_equals_three_single_calls(towers):
    model = towers.siglip()
    clips = [towers.frames(4, seed=s) for s in (3, 4, 5)]
    handle = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=3))
    singles = []
    for clip in clips:
        handle.stream.reset()
        singles.append(torch.cat([o.last_hidden_state for o in run_stream(model, clip)]))
    streams = [handle.new_stream() for _ in clips]
    streams[2].reset()
    batched = []
    with torch.no_grad(), handle.use(streams):
        for i in range(4):
            batched.append(model(pixel_values=torch.cat([c[i : i + 1] for c in clips])).last_hidden_state)
    for s in range(3):
        got = torch.stack([step[s] for step in batched])
        torch.testing.assert_close(got, singles[s], rtol=1e-5, atol=1e-5)
    assert [st.stats.reference_frames for st in streams] == [2, 2, 2]


def test_streams_at_different_phases_in_one_batch(towers):
    """One stream at a reference frame and another at a selective frame share a call."""
    model = towers.siglip()
    a, b = towers.frames(3, seed=6), towers.frames(3, seed=7)
    handle = attach_cacher(model, CacherConfig(update_ratio=0.5, cache_interval=2))
    sa, sb = handle.new_stream(), handle.new_stream()
    with torch.no_grad():
        with handle.use(sa):
            expected_a = [model(pixel_values=a[i : i + 1]).last_hidden_state for i in range(3)]
        with handle.use(sb):
            expected_b = [model(pixel_values=b[i : i + 1]).last_hidden_state for i in range(2)]
        sa.reset(), sb.reset()
        with handle.use(sa):
            model(pixel_values=a[:1])
        with handle.use([sa, sb]):  # sa frame 1 (selective), sb frame 0 (reference)
            out = model(pixel_values=torch.cat([a[1:2], b[:1]])).last_hidden_state
        with handle.use([sa, sb]):  # sa frame 2 (reference), sb frame 1 (selective)
            out2 = model(pixel_values=torch.cat([a[2:3], b[1:2]])).last_hidden_state
    torch.testing.assert_close(out[0], expected_a[1][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[1], expected_b[0][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out2[0], expected_a[2][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out2[1], expected_b[1][0], rtol=1e-5, atol=1e-5)


def test_detach_restores_bit_identical_outputs_and_double_attach_is_refused(towers):
    model = towers.clip()
    frames = towers.frames(3)
    before = run_stream(model, frames)
    handle = attach_cacher(model, CacherConfig(update_ratio=0.25))
    with pytest.raises(RuntimeError, match="already has STC-Cacher attached"):
        attach_cacher(model, CacherConfig())
    run_stream(model, frames)
    handle.detach()
    handle.detach()  # idempotent
    after = run_stream(model, frames)
    for b, a in zip(before, after):
        assert torch.equal(a.last_hidden_state, b.last_hidden_state)
    assert all(type(layer).__name__ == "CLIPEncoderLayer" for layer in find_encoder_layers(model)[1])


def test_inference_mode_and_grad_free_paths(towers):
    model = towers.siglip()
    frames = towers.frames(3)
    with attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=2)) as stream:
        with torch.inference_mode():
            outs = [model(pixel_values=frames[i : i + 1]).last_hidden_state for i in range(3)]
    assert stream.stats.reference_frames == 2 and all(o.shape == (1, 16, 32) for o in outs)


def test_layers_found_in_both_layouts_and_llava_onevision(towers):
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    siglip = towers.siglip()  # transformers 5: the model holds .encoder.layers itself
    assert find_encoder_layers(siglip)[0] == "encoder.layers"
    legacy = torch.nn.Module()  # transformers 4 layout: <model>.vision_model.encoder.layers
    legacy.vision_model = towers.clip()
    assert find_encoder_layers(legacy)[0] == "vision_model.encoder.layers"
    assert attach_cacher(legacy, CacherConfig()).tower is legacy.vision_model
    config = LlavaOnevisionConfig(
        vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, image_size=28, patch_size=7),
        text_config=dict(model_type="qwen2", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=128),
    )
    llava = LlavaOnevisionForConditionalGeneration(config).eval()
    handle = attach_cacher(llava, CacherConfig(update_ratio=0.5))
    assert handle.tower is llava.model.vision_tower
    with torch.no_grad():
        for frame in towers.frames(2):
            llava.model.vision_tower(pixel_values=frame[None])
    assert handle.stream.stats.selective_frames == 1
    handle.detach()


def test_models_without_or_with_several_encoder_stacks_are_refused():
    from transformers import CLIPConfig, CLIPModel

    with pytest.raises(ValueError, match="no ViT encoder layers of a known family"):
        attach_cacher(torch.nn.Linear(3, 3), CacherConfig())
    tiny = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4)
    both = CLIPModel(CLIPConfig(text_config=dict(tiny, vocab_size=64), vision_config=dict(tiny, image_size=28, patch_size=7)))
    with pytest.raises(ValueError, match="several encoder stacks"):
        attach_cacher(both, CacherConfig())


def test_mismatched_stream_count_and_foreign_streams_are_refused(towers):
    model = towers.siglip()
    handle = attach_cacher(model, CacherConfig())
    other = attach_cacher(towers.siglip(), CacherConfig())
    with pytest.raises(ValueError, match="created by this handle"):
        with handle.use(other.stream):
            pass
    with pytest.raises(ValueError, match="2 streams"), torch.no_grad():
        with handle.use([handle.new_stream(), handle.new_stream()]):
            model(pixel_values=towers.frames(3))


def test_input_feature_selection_and_other_metrics_run_selectively(towers):
    model = towers.siglip()
    frames = towers.frames(3, drift=0.3)
    for config in (CacherConfig(selection_feature="input"), CacherConfig(metric="l2"), CacherConfig(metric="dot"), CacherConfig(metric="l1")):
        with attach_cacher(model, config) as stream:
            outs = run_stream(model, frames)
            assert stream.stats.selective_frames == 1
            assert torch.isfinite(outs[1].last_hidden_state).all()


def test_cuda_graph_flag_is_inert_on_cpu(towers):
    model = towers.siglip()
    frames = towers.frames(4)
    expected = run_stream(model, frames)
    handle = attach_cacher(model, CacherConfig(update_ratio=1.0, cache_interval=2, cuda_graph=True))
    got = run_stream(model, frames)
    assert handle.graph_runner.captures == 0 and handle.graph_runner.replays == 0
    for e, g in zip(expected, got):
        torch.testing.assert_close(g.last_hidden_state, e.last_hidden_state, rtol=1e-5, atol=1e-5)
    handle.detach()
    assert "forward" not in model.__dict__


def test_graph_runner_predicts_the_plan_of_chained_and_mixed_batches(towers):
    """The CUDA-graph key relies on expected_modes() matching what plan_call() decides."""
    from stc.cacher.plan import expected_modes

    model = towers.siglip()
    handle = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=3))
    a, b = handle.new_stream(), handle.new_stream()
    frames = towers.frames(5)
    with torch.no_grad():
        for rows in ([a, a, a, a], [a, b, a, b], [b, b, b], [a, b]):
            predicted = expected_modes(rows, 3)
            with handle.use(rows):
                model(pixel_values=frames[: len(rows)])
            assert handle._plan.modes == predicted
    assert a.frame_idx == 7 and b.frame_idx == 6
    handle.detach()


def test_fused_layer_functions_compute_the_eager_math(towers):
    """The functions `fused=True` compiles on CUDA, run uncompiled on CPU, equal the eager layers."""
    from stc.cacher import fused
    from stc.cacher.state import LayerReference

    model = towers.siglip(layers=1, attn="sdpa")
    layer = model.encoder.layers[0]
    frames = towers.frames(2, drift=0.3)
    config = CacherConfig(update_ratio=0.25, cache_interval=2)
    handle = attach_cacher(model, config)
    with torch.no_grad():
        h0, h1 = model.embeddings(frames[:1]), model.embeddings(frames[1:2])
        out0 = model(pixel_values=frames[:1], output_hidden_states=True).hidden_states[1]
        stored = handle.stream.layers[0]
        out1 = model(pixel_values=frames[1:2], output_hidden_states=True).hidden_states[1]
        parts = handle.parts[0]
        selective_w, reference_w = fused.stacked_weights(handle.anatomy.fused_weights(parts))
        constants = (4, *fused._constants(parts, "gelu_pytorch_tanh", config, 0))
        ref_out, stores = fused._reference_layer(h0, None, *reference_w, *constants)
        mine = LayerReference()
        for name, tensor in zip(LayerReference.__slots__, stores[:, 0]):
            setattr(mine, name, tensor)
        sel_out = fused._selective_layer(h1, stored.selection[None], stored.value[None], stored.branch_sum[None],
                                         *selective_w, *constants)
    torch.testing.assert_close(ref_out, out0, rtol=1e-5, atol=1e-5)
    for name in LayerReference.__slots__:
        torch.testing.assert_close(getattr(mine, name), getattr(stored, name), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sel_out, out1, rtol=1e-5, atol=1e-5)
    handle.detach()


def test_fused_selective_function_handles_a_batch_of_streams(towers):
    """Uncompiled on CPU: the fused selective function on 3 streams' stacked references equals the
    eager batched layer (the multi-stream path `fused=True` compiles on CUDA)."""
    from stc.cacher import fused
    from stc.cacher.layer import stored_references

    model = towers.siglip(layers=1)
    layer = model.encoder.layers[0]
    config = CacherConfig(update_ratio=0.25, cache_interval=4)
    handle = attach_cacher(model, config)
    clips = [towers.frames(2, seed=s, drift=0.3) for s in range(3)]
    streams = [handle.new_stream() for _ in clips]
    with torch.no_grad(), handle.use(streams):
        model(pixel_values=torch.cat([c[:1] for c in clips]))
        second = torch.cat([c[1:] for c in clips])
        expected = model(pixel_values=second, output_hidden_states=True).hidden_states[1]
        refs = stored_references(handle._plan, 0)
        parts = handle.parts[0]
        selective_w, _ = fused.stacked_weights(handle.anatomy.fused_weights(parts))
        args = (*selective_w, 4, *fused._constants(parts, "gelu_pytorch_tanh", config, 0))
        got = fused._selective_layer(model.embeddings(second), refs.selection, refs.value, refs.branch_sum, *args)
    assert refs.value.shape == (3, 16, 32)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    handle.detach()


def test_staggered_streams_spread_reference_rows_and_equal_shifted_single_streams(towers):
    """stagger_streams: stream i refreshes at frames ≡ i (mod N) after its first; a batched call then
    holds one reference row per N streams, and each stream equals a single stream of that phase."""
    model = towers.siglip()
    clips = [towers.frames(7, seed=s, drift=0.2) for s in range(4)]
    config = CacherConfig(update_ratio=0.25, cache_interval=4, stagger_streams=True)
    handle = attach_cacher(model, config)
    streams = [handle.new_stream() for _ in clips]
    assert [s.phase for s in streams] == [1, 2, 3, 0]  # the default stream took phase 0
    per_call = []
    with torch.no_grad(), handle.use(streams):
        steps = []
        for i in range(7):
            steps.append(model(pixel_values=torch.cat([c[i : i + 1] for c in clips])).last_hidden_state)
            per_call.append(len(handle._plan.reference_rows))
    assert per_call == [4, 1, 1, 1, 1, 1, 1]  # frame 0 of every stream, then one stream per call
    for clip, stream, in zip(clips, streams):
        single = handle.new_stream(phase=stream.phase)
        with torch.no_grad(), handle.use(single):
            alone = torch.cat([model(pixel_values=clip[i : i + 1]).last_hidden_state for i in range(7)])
        torch.testing.assert_close(torch.stack([s[streams.index(stream)] for s in steps]), alone, rtol=1e-5, atol=1e-5)
    handle.detach()
