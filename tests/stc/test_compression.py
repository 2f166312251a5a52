"""The compression seam: registry table, CompressionSpec validation and labels, HostCompression wiring."""

import pytest
import torch

from frameworks.common.compression import HostCompression
from stc.compression import METHODS, CompressionSpec, Stage, TokenMethod, TokenSide, method_class
from stc.config import CacherConfig, PrunerConfig, STCConfig


def test_every_registered_method_resolves_to_its_class():
    for name in METHODS:
        cls = method_class(name)
        assert cls.name == name and isinstance(cls.stage, Stage)
        cls(cls.config_class())  # default config builds
    with pytest.raises(KeyError, match="unknown compression method 'nope'"):
        method_class("nope")


def test_spec_validation_names_the_key():
    with pytest.raises(ValueError, match=r"^compression\.nope: unknown compression method"):
        CompressionSpec.from_mapping({"nope": {}})
    with pytest.raises(ValueError, match=r"^compression\.cacher\.update_ratoi: unknown setting"):
        CompressionSpec.from_mapping({"cacher": {"update_ratoi": 0.5}})
    with pytest.raises(ValueError, match=r"^compression\.cacher: invalid STC setting update_ratio=1.5"):
        CompressionSpec.from_mapping({"cacher": {"update_ratio": 1.5}})
    with pytest.raises(ValueError, match=r"compression\.pruner: expected a mapping"):
        CompressionSpec.from_mapping({"pruner": 49})


def test_spec_converts_lists_disables_nulls_and_labels_by_preset():
    spec = CompressionSpec.from_mapping({"cacher": None, "pruner": {"tokens_per_frame": 9, "bandwidths": [1.0, 2.0]}})
    assert spec.configs == {"pruner": PrunerConfig(tokens_per_frame=9, bandwidths=(1.0, 2.0))}
    assert spec.label == "stc_pruner"
    assert CompressionSpec.from_mapping({"pruner": {}, "cacher": {}}).label == "stc"
    assert CompressionSpec.from_mapping({}).label == "none"
    assert CompressionSpec.from_mapping({"name": "mine", "cacher": {}}).label == "mine"
    legacy = CompressionSpec.coerce(STCConfig(cacher=CacherConfig(cache_interval=4)))
    assert legacy.configs == {"cacher": CacherConfig(cache_interval=4)} and legacy.label == "stc_cacher"


def test_build_orders_methods_by_stage_and_gives_fresh_objects():
    spec = CompressionSpec.from_mapping({"pruner": {}, "cacher": {}})
    first, second = spec.build(), spec.build()
    assert [m.stage for m in first] == [Stage.VISION, Stage.TOKENS]
    assert all(a is not b for a, b in zip(first, second))


def test_host_compression_checks_budgets_at_build():
    with pytest.raises(ValueError, match=r"compression\.pruner\.tokens_per_frame=50 exceeds the 49 tokens"):
        HostCompression({"pruner": {"tokens_per_frame": 50}}, tokens_per_frame=49)
    with pytest.raises(ValueError, match=r"compression\.pruner\.grid=\(3, 4\)"):
        HostCompression({"pruner": {"tokens_per_frame": 4, "layout": "grid_newline", "grid": [3, 4]}}, tokens_per_frame=12)
    assert HostCompression({"pruner": {"tokens_per_frame": 7}}, tokens_per_frame=49).tokens_out == 7
    assert HostCompression(None, tokens_per_frame=49).tokens_out == 49
    with pytest.raises(ValueError, match="does not support vision-stage"):
        HostCompression({"cacher": {}}, 49, host="text-only", supported_stages=(Stage.TOKENS,))


class _KeepEvery(TokenMethod):
    """Test method: keep every `step`-th token (indices into its own input)."""

    name, config_class = "keep_every", dict

    def __init__(self, step):
        self.config, self.step = {}, step

    def compress(self, tokens, side):
        index = torch.arange(0, tokens.shape[1], self.step).expand(tokens.shape[0], -1)
        return tokens[:, :: self.step], index


def test_token_methods_chain_and_indices_refer_to_the_original_tokens():
    compression = HostCompression(None, tokens_per_frame=12)
    compression.methods = [_KeepEvery(2), _KeepEvery(3)]
    tokens = torch.arange(12.0).view(1, 12, 1).repeat(2, 1, 4)
    kept, indices = compression.compress_tokens(tokens, TokenSide())
    assert indices.tolist() == [[0, 6], [0, 6]]
    torch.testing.assert_close(kept, torch.gather(tokens, 1, indices[..., None].expand(-1, -1, 4)))


def test_stc_through_the_seam_equals_the_library_objects(towers):
    """HostCompression(cacher+pruner) on a tower gives exactly what attach_cacher + STCPruner give."""
    from stc import STCPruner, attach_cacher

    frames = towers.frames(5, drift=0.2)
    spec = {"cacher": {"update_ratio": 0.25, "cache_interval": 2}, "pruner": {"tokens_per_frame": 5}}
    model = towers.siglip()
    compression = HostCompression(spec, tokens_per_frame=16)
    compression.attach(model)
    with torch.no_grad():
        seam = [compression.compress_tokens(model(pixel_values=f[None]).last_hidden_state) for f in frames]
    assert compression.frame_kinds() == (3, 2)
    assert compression.stats()["pruner"] == {"tokens_in": 80, "tokens_kept": 25}
    compression.close()
    handle, pruner = attach_cacher(model, CacherConfig(update_ratio=0.25, cache_interval=2)), STCPruner(PrunerConfig(tokens_per_frame=5))
    with torch.no_grad():
        direct = [pruner.compress(model(pixel_values=f[None]).last_hidden_state) for f in frames]
    handle.detach()
    for (a, ia), (b, ib) in zip(seam, direct):
        assert torch.equal(ia, ib) and torch.equal(a, b)


def test_host_table_resolves_every_entry():
    from frameworks.registry import HOSTS, build_host, host_factory

    for name in HOSTS:
        assert callable(host_factory(name))
    with pytest.raises(KeyError, match="unknown framework 'nope'; available: "):
        build_host("nope")
