"""ToMe: the merge rule by hand, the merge-to-budget schedule, and the patched SigLIP/CLIP towers against
the stock HF towers (equal when nothing merges; exact budgets; detach/bypass restore the stock forward)."""

import pytest
import torch

from stc.integrations.anatomy.probe import tower_layers
from stc.baselines.tome_merge import bipartite_soft_matching, merge_schedule, merge_weighted
from stc.compression import CompressionSpec


def tome(**settings):
    return CompressionSpec.from_mapping({"tome": settings}).build()[0]


def test_merge_of_four_tokens_by_hand():
    # A = tokens 0, 2; B = tokens 1, 3. Metric: token 2 points like token 3 (cos 1), token 0 is at 45 deg
    # to token 1 and orthogonal to token 3 -> the strongest edge is 2 -> 3; with r = 1 only it merges.
    metric = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 2.0], [0.0, 1.0]]])
    x = torch.tensor([[[1.0], [2.0], [4.0], [8.0]]])
    size = torch.tensor([[[1.0], [1.0], [3.0], [1.0]]])
    merge = bipartite_soft_matching(metric, r=1)
    merged, merged_size = merge_weighted(merge, x, size)
    # output [unmerged A ; B] = [x0, x1, (3*4 + 1*8) / 4]
    torch.testing.assert_close(merged, torch.tensor([[[1.0], [2.0], [5.0]]]))
    torch.testing.assert_close(merged_size, torch.tensor([[[1.0], [1.0], [4.0]]]))
    positions = merge(torch.tensor([[0, 1, 2, 3]]), "amin")
    assert positions.tolist() == [[0, 1, 2]]


def test_protected_first_token_never_merges_and_stays_first():
    metric = torch.tensor([[[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.1], [0.3, 0.3]]])
    merge = bipartite_soft_matching(metric, r=2, protect_first=True)
    out = merge(torch.arange(5.0).view(1, 5, 1), "amin")
    assert out.shape == (1, 3, 1) and out[0, 0, 0] == 0  # CLS (identical to token 1) kept and first
    # unprotected, token 0 (identical to token 1) is the strongest edge and merges into it
    free = bipartite_soft_matching(metric, r=1)(torch.arange(5.0).view(1, 5, 1), "amin")
    assert free[0, :, 0].tolist() == [2.0, 4.0, 0.0, 3.0]


def test_merge_schedule_hits_the_budget_exactly():
    assert merge_schedule(729, 49, 26) == [27] * 25 + [5]            # LLaVA-OV SigLIP 729 -> 49
    assert merge_schedule(729, 64, 26) == [26] * 25 + [15]           # 64/196 budget
    assert merge_schedule(16, 4, 2) == [8, 4]                        # needs full halving
    assert merge_schedule(17, 5, 2, protected=1) == [8, 4]           # CLS + 16 -> CLS + 4
    assert merge_schedule(10, 10, 3) == [0, 0, 0]
    with pytest.raises(ValueError, match="down to 8 at best"):
        merge_schedule(16, 4, 1)


def _siglip():
    from frameworks.common.model_sizes import siglip_tiny_config
    from transformers import SiglipVisionModel

    torch.manual_seed(0)
    return SiglipVisionModel(siglip_tiny_config()).eval()


def _clip():
    from frameworks.common.model_sizes import clip_tiny_config
    from transformers import CLIPVisionModel

    torch.manual_seed(0)
    return CLIPVisionModel(clip_tiny_config()).eval()


@pytest.mark.parametrize("make", [_siglip, _clip])
def test_no_merge_budget_equals_the_stock_tower(make):
    tower = make()
    config = tower.config
    patches = (config.image_size // config.patch_size) ** 2
    pixels = torch.randn(2, 3, config.image_size, config.image_size)
    with torch.no_grad():
        stock = tower(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
        method = tome(tokens_per_frame=patches)
        method.attach(tower)
        ours = tower(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-5)
    assert method.stats()["tokens_merged"] == 0


@pytest.mark.parametrize("make,budget", [(_siglip, 11), (_siglip, 30), (_clip, 4), (_clip, 9)])
def test_budget_is_exact_and_detach_bypass_restore_the_stock_tower(make, budget):
    tower = make()
    config = tower.config
    has_cls = make is _clip
    pixels = torch.randn(3, 3, config.image_size, config.image_size)
    with torch.no_grad():
        stock = tower(pixel_values=pixels).last_hidden_state
        method = tome(tokens_per_frame=budget)
        method.attach(tower)
        merged = tower(pixel_values=pixels, output_hidden_states=True)
        assert merged.last_hidden_state.shape == (3, budget + has_cls, config.hidden_size)
        if has_cls:  # CLS is protected and first: its row must differ from every merged patch row
            assert merged.hidden_states[-1].shape[1] == budget + 1
        with method.bypass():
            torch.testing.assert_close(tower(pixel_values=pixels).last_hidden_state, stock)
        stats = method.stats()
        assert stats["frames"] == 3 and stats["tokens_kept"] == 3 * budget
        assert stats["tokens_merged"] == 3 * (stats["tokens_in"] // 3 - budget)
        method.detach()
        assert all("forward" not in layer.__dict__ for layer in tower_layers(tower).layers)
        torch.testing.assert_close(tower(pixel_values=pixels).last_hidden_state, stock)


@pytest.mark.parametrize("make,budget", [(_siglip, 11), (_clip, 9)])
def test_frames_merged_in_one_call_equal_each_frame_alone(make, budget):
    """The batched merge (per-row sizes, gathers and scatters over a batch of frames) must not mix
    frames: 3 frames in one call equal the same 3 frames one per call."""
    tower = make()
    config = tower.config
    pixels = torch.randn(3, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(5))
    method = tome(tokens_per_frame=budget)
    method.attach(tower)
    with torch.no_grad():
        batched = tower(pixel_values=pixels).last_hidden_state
        alone = torch.cat([tower(pixel_values=pixels[f:f + 1]).last_hidden_state for f in range(3)])
    method.detach()
    assert batched.shape[1] == budget + (make is _clip)
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-5)


def test_proportional_attention_matches_a_plain_reference_layer():
    """One layer by hand: after a first-layer merge, the second layer's attention must add log(size)."""
    tower = _siglip()
    layers = tower_layers(tower).layers
    pixels = torch.randn(1, 3, 63, 63)
    method = tome(tokens_per_frame=41)  # schedule over 3 layers from 81 tokens
    method.attach(tower)
    captured = {}
    original = layers[1].forward

    def spy(hidden_states, attention_mask=None, **kwargs):
        captured["input"] = hidden_states.clone()
        captured["size"] = method._state.size.clone()
        out = original(hidden_states, attention_mask, **kwargs)
        captured["output"] = out
        return out

    layers[1].forward = spy
    with torch.no_grad():
        tower(pixel_values=pixels)
        schedule = method.schedule
        assert schedule[0] > 0 and captured["size"].max() > 1
        # reference layer 1: explicit softmax with + log(size), then the layer's own merge and MLP
        layer, x, size = layers[1], captured["input"], captured["size"]
        heads, dim = layer.self_attn.num_heads, layer.self_attn.head_dim
        normed = layer.layer_norm1(x)
        split = lambda t: t.view(1, -1, heads, dim).transpose(1, 2)
        q, k, v = split(layer.self_attn.q_proj(normed)), split(layer.self_attn.k_proj(normed)), split(layer.self_attn.v_proj(normed))
        logits = q @ k.transpose(-1, -2) * layer.self_attn.scale + size.log().view(1, 1, 1, -1)
        attended = (torch.softmax(logits, -1) @ v).transpose(1, 2).reshape(1, x.shape[1], -1)
        y = x + layer.self_attn.out_proj(attended)
        merge = bipartite_soft_matching(k.mean(1), schedule[1])
        y, _ = merge_weighted(merge, y, size)
        y = y + layer.mlp(layer.layer_norm2(y))
    torch.testing.assert_close(captured["output"], y, rtol=1e-5, atol=1e-5)
    method.detach()


def test_unreachable_budget_fails_at_attach_naming_the_knob():
    tower = _siglip()  # 81 tokens, 3 layers: at best 81 -> 41 -> 21 -> 11
    with pytest.raises(ValueError, match=r"compression\.tome\.tokens_per_frame=10: 3 layers can merge 81 tokens down to 11"):
        tome(tokens_per_frame=10).attach(tower)


@pytest.mark.parametrize("tower_name", ["siglip", "clip", "dinov2"])
def test_tome_without_merges_equals_the_stock_tower_on_every_adapted_family(tower_name):
    """ToMe reads layers through the anatomy adapters: with a budget of every patch (no merge), its
    layer math (incl. DINOv2's layer scales, CLIP's and DINOv2's CLS) equals the stock tower."""
    from tests.stc.families import TOWERS

    torch.manual_seed(0)
    family = TOWERS[tower_name]
    tower = family.build()
    pixels = family.frames(2, drift=0.3)
    with torch.no_grad():
        stock = tower(pixel_values=pixels).last_hidden_state
        patches = stock.shape[1] - family.prefix_tokens
        method = tome(tokens_per_frame=patches)
        method.attach(tower)
        merged = tower(pixel_values=pixels).last_hidden_state
        method.detach()
    assert method.stats()["tokens_merged"] == 0
    torch.testing.assert_close(merged, stock, rtol=1e-9, atol=1e-9)


def test_tome_refuses_a_family_without_separate_qkv():
    from tests.stc.families import TOWERS

    with pytest.raises(TypeError, match="compression.tome: the qwen2_vl ViT family"):
        tome(tokens_per_frame=4).attach(TOWERS["qwen2_vl"].build())
