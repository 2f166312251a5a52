"""frameworks/common/released_weights.py: rename rules in order, shard discovery (index or glob, safetensors
or torch .bin), one-line errors naming the file and key, nothing copied on error, exact round trip."""

import json

import pytest
import torch
from safetensors.torch import save_file

from frameworks.common.released_weights import (NameMap, ReleasedWeightsError, WeightFile, load_released_weights,
                                                weight_files)

# released "model.enc.*" / "model.out.*" / "model.scale" onto encoder.* / head.* / scale
NAMES = NameMap(rules=(("model.enc.", "encoder."), ("model.out.", "head."), ("model.unused.", None), ("model.", "")),
                folds=(("model.model.", "model."),), ignore=(r"\.inv_freq$",))


class Tiny(torch.nn.Module):
    def __init__(self, seed: int, width: int = 5):
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = torch.nn.Linear(3, width)
        self.head = torch.nn.Linear(width, 2)
        self.register_buffer("scale", torch.randn(2))                      # persistent: must be loaded
        self.register_buffer("cache", torch.zeros(4), persistent=False)    # not in the state dict


def _released(model):
    return {NAMES.released(name): tensor.clone() for name, tensor in model.state_dict().items()}


def _load(model, folder, **kwargs):
    load_released_weights(model, weight_files(folder, **kwargs), NAMES, folder, "the tiny layout")


def _assert_same(model, reference):
    ours, theirs = model.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    for name in theirs:
        assert torch.equal(ours[name], theirs[name]), name


def test_rules_first_match_wins_after_folds():
    assert NAMES.ours("model.enc.weight") == "encoder.weight"          # not "enc.weight" from the later "model." rule
    assert NAMES.ours("model.model.out.bias") == "head.bias"           # folded first, then the rules
    assert NAMES.ours("model.unused.table") is None                    # mapped to None: deliberately unused
    assert NAMES.ours("model.scale") == "scale"
    with pytest.raises(KeyError):
        NAMES.ours("lm_head.weight")
    reversed_rules = NameMap(rules=tuple(reversed(NAMES.rules)))
    assert reversed_rules.ours("model.enc.weight") == "enc.weight"
    assert [NAMES.released(n) for n in ("encoder.bias", "head.weight", "scale")] == [
        "model.enc.bias", "model.out.weight", "model.scale"]


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_round_trip_equals_the_modules_own_state_dict(tmp_path, fmt):
    original = Tiny(seed=1)
    state = _released(original)
    state["model.layers.0.rotary.inv_freq"] = torch.ones(3)   # no place in ours, ignored by pattern
    state["model.unused.table"] = torch.ones(7)               # mapped to None
    if fmt == "safetensors":
        save_file(state, str(tmp_path / "model.safetensors"))
    else:
        torch.save(state, tmp_path / "pytorch_model.bin")
        torch.save({"lr": torch.ones(1)}, tmp_path / "training_args.bin")  # not a weight file: never read
    reloaded = Tiny(seed=2)
    assert not torch.equal(reloaded.encoder.weight, original.encoder.weight)
    _load(reloaded, tmp_path, fmt=fmt)
    _assert_same(reloaded, original)


def test_loads_into_the_models_dtype_and_reads_subfolders_under_a_prefix(tmp_path):
    original = Tiny(seed=1)
    state = _released(original)
    (tmp_path / "side").mkdir()
    save_file({k: v for k, v in state.items() if not k.startswith("model.out.")}, str(tmp_path / "model.safetensors"))
    save_file({k[len("model."):]: v for k, v in state.items() if k.startswith("model.out.")},
              str(tmp_path / "side" / "model.safetensors"))
    reloaded = Tiny(seed=2).double()
    files = weight_files(tmp_path) + weight_files(tmp_path / "side", prefix="model.")
    load_released_weights(reloaded, files, NAMES, tmp_path)
    for name, tensor in original.state_dict().items():
        assert reloaded.state_dict()[name].dtype == torch.float64
        assert torch.equal(reloaded.state_dict()[name], tensor.double()), name


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_sharded_index_names_the_files_read(tmp_path, fmt):
    original = Tiny(seed=1)
    state = _released(original)
    names = sorted(state)
    suffix = "safetensors" if fmt == "safetensors" else "bin"
    stem = "model" if fmt == "safetensors" else "pytorch_model"
    shards = {f"{stem}-00001-of-00002.{suffix}": names[:2], f"{stem}-00002-of-00002.{suffix}": names[2:]}
    for file, keys in shards.items():
        part = {k: state[k] for k in keys}
        save_file(part, str(tmp_path / file)) if fmt == "safetensors" else torch.save(part, tmp_path / file)
    stray = {"model.stray.weight": torch.zeros(1)}  # a leftover file the index does not name
    stray_file = tmp_path / f"{stem}-old.{suffix}"
    save_file(stray, str(stray_file)) if fmt == "safetensors" else torch.save(stray, stray_file)
    index = tmp_path / ("model.safetensors.index.json" if fmt == "safetensors" else "pytorch_model.bin.index.json")
    index.write_text(json.dumps({"weight_map": {k: f for f, keys in shards.items() for k in keys}}))

    assert [f.path.name for f in weight_files(tmp_path, fmt=fmt)] == sorted(shards)
    reloaded = Tiny(seed=2)
    _load(reloaded, tmp_path, fmt=fmt)
    _assert_same(reloaded, original)
    # without the index every file is read, and the stray key is reported with its file
    with pytest.raises(ReleasedWeightsError, match=rf"unexpected keys \[model\.stray\.weight\] in {stray_file.name}$"):
        _load(Tiny(seed=2), tmp_path, fmt=fmt, index=False)
    (tmp_path / sorted(shards)[1]).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{index.name}: names shards that are not in the folder: "
                                                rf"{stem}-00002-of-00002"):
        weight_files(tmp_path, fmt=fmt)


def _one_line_error(model, folder, pattern):
    with pytest.raises(ReleasedWeightsError, match=pattern) as error:
        _load(model, folder)
    assert "\n" not in str(error.value)
    return error.value


def test_missing_key_is_one_line_naming_the_checkpoint_files_and_key(tmp_path):
    state = _released(Tiny(seed=1))
    del state["model.out.bias"]
    save_file(state, str(tmp_path / "model.safetensors"))
    model = Tiny(seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    error = _one_line_error(model, tmp_path, rf"^checkpoint '{tmp_path}' does not fit the tiny layout: "
                                             r"missing keys \[head\.bias\] \(in none of model\.safetensors\)$")
    assert error.mismatch.missing == ["head.bias"] and not error.mismatch.unexpected
    _assert_same_dict(model.state_dict(), before)  # nothing copied


def test_unexpected_key_is_one_line_naming_its_shard(tmp_path):
    state = _released(Tiny(seed=1))
    save_file({"model.enc.weight": state.pop("model.enc.weight")}, str(tmp_path / "a.safetensors"))
    save_file({**state, "model.enc.extra": torch.zeros(2)}, str(tmp_path / "b.safetensors"))
    error = _one_line_error(Tiny(seed=2), tmp_path, r"does not fit the tiny layout: "
                                                    r"unexpected keys \[model\.enc\.extra\] in b\.safetensors$")
    assert error.mismatch.unexpected == [("b.safetensors", "model.enc.extra")]


def test_shape_mismatch_is_one_line_naming_file_key_and_both_shapes(tmp_path):
    save_file(_released(Tiny(seed=1, width=4)), str(tmp_path / "model.safetensors"))
    model = Tiny(seed=2, width=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _one_line_error(model, tmp_path, r"does not fit the tiny layout: shapes do not match the config: "
                                     r"model\.safetensors:model\.enc\.bias checkpoint \(4,\) vs model \(5,\), "
                                     r"model\.safetensors:model\.enc\.weight checkpoint \(4, 3\) vs model \(5, 3\), "
                                     r"model\.safetensors:model\.out\.weight checkpoint \(2, 4\) vs model \(2, 5\)$")
    _assert_same_dict(model.state_dict(), before)


def test_optional_names_may_be_absent_and_bad_files_name_themselves(tmp_path):
    state = _released(Tiny(seed=1))
    del state["model.scale"]
    save_file(state, str(tmp_path / "model.safetensors"))
    model = Tiny(seed=2)
    load_released_weights(model, weight_files(tmp_path), NAMES, tmp_path, optional=["scale"])
    assert torch.equal(model.head.bias, Tiny(seed=1).head.bias)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"model\.safetensors: not a readable safetensors file"):
        _load(Tiny(seed=2), tmp_path)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "pytorch_model.bin").write_bytes(b"nor a torch file")
    with pytest.raises(ValueError, match=r"pytorch_model\.bin: not a readable torch weight file"):
        load_released_weights(Tiny(seed=2), [WeightFile(tmp_path / "pytorch_model.bin")], NAMES, tmp_path)
    with pytest.raises(ValueError, match="fmt='ckpt'"):
        weight_files(tmp_path, fmt="ckpt")


def _assert_same_dict(ours, theirs):
    for name in theirs:
        assert torch.equal(ours[name], theirs[name]), name
